"""The chat page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium), against
`lima ui` and a live server with API keys. Screenshots go to pytest's temporary directory, or to the directory
LIMA_TEST_SCREENSHOTS names (the README's picture comes from there)."""

import asyncio
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from harness.live_server import LiveServer
from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME
from server.core.engine.loop_guard import most_repeated
from tests.conftest import API_KEYS
from tests.metrics_scrape import scrape, total
from ui.client import STOPPED_NOTES, ChatClient

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
T = TypeVar("T")
# Every distinct text the last answer bubble shows, recorded by the page itself at each DOM change.
RECORD_ANSWER_TEXTS = """
window.answerTexts = [];
new MutationObserver(() => {
  const bubbles = document.querySelectorAll("#chat [data-testid='bot']");
  const text = bubbles.length ? bubbles[bubbles.length - 1].innerText : "";
  if (text && window.answerTexts[window.answerTexts.length - 1] !== text) window.answerTexts.push(text);
}).observe(document.querySelector("#chat"), {subtree: true, childList: true, characterData: true});
"""

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed; `make test` installs them with apt-get "
    "when run as root on Debian (the UI's client logic is still tested in test_ui_client.py)",
)


def start_page(server_url: str, extra: list[str], factory: pytest.TempPathFactory) -> LiveServer:
    command = [sys.executable, "-m", "lima.cli", "ui", "--server-url", server_url, *extra]
    return LiveServer([], factory.mktemp("logs") / "ui.log", command=command, ready_path="/").wait_ready(120)


@pytest.fixture(scope="module")
def page(replicas: tuple[LiveServer, LiveServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`lima ui` for alice, on a free port, talking to replica A (tiny model, API keys) through its public API."""
    with start_page(replicas[0].url, ["--api-key", API_KEYS["alice"]], tmp_path_factory) as ui:
        yield ui


@pytest.fixture(scope="module")
def default_page(default_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`lima ui` on the embedded default model (no keys): it writes long answers, long enough to stop one."""
    with start_page(default_server.url, [], tmp_path_factory) as ui:
        yield ui


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("LIMA_TEST_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # As root in a container, on a closed network: no sandbox, no background calls home, a fresh profile.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,860"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def until(condition: Callable[[], T], timeout: float = 60, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := condition():
                return result
        except WebDriverException:
            pass
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(every)


def call(server: LiveServer, method: str, *args: Any, key: str | None = None) -> Any:
    """One ChatClient call on the server's public API, to check what the page did."""
    async def run() -> Any:
        async with ChatClient(server.url, key) as chat:
            return await getattr(chat, method)(*args)

    return asyncio.run(run())


def letters(text: str) -> str:
    """Text without what Markdown rendering may change (symbols, spacing; the tiny model writes noise), and
    without the note the page shows under an answer that was stopped (it is not part of the stored answer)."""
    for note in STOPPED_NOTES.values():
        text = text.removesuffix(note)
    return re.sub(r"\W", "", text)


def bot_texts(driver: WebDriver) -> list[str]:
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "#chat [data-testid='bot']")]


def user_texts(driver: WebDriver) -> list[str]:
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "#chat [data-testid='user']")]


def sidebar_entry(driver: WebDriver, title: str) -> list:
    return driver.find_elements(By.CSS_SELECTOR, f"#conversations label[data-testid='{title}-radio-label']")


def send(driver: WebDriver, text: str) -> None:
    """Type the message and press Enter, as people do."""
    until(lambda: driver.find_element(By.CSS_SELECTOR, "#message textarea")).send_keys(text + Keys.ENTER)


def click_send(driver: WebDriver, text: str) -> None:
    until(lambda: driver.find_element(By.CSS_SELECTOR, "#message textarea")).send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "#send").click()


def test_chat_reload_reopen_delete(page: LiveServer, browser: WebDriver, screenshots: Path,
                                        replicas: tuple[LiveServer, LiveServer]) -> None:
    server = replicas[0]

    def api(method: str, *args: Any) -> Any:
        return call(server, method, *args, key=API_KEYS["alice"])

    question = f"Hello from Chromium {uuid.uuid4().hex[:6]}"
    browser.get(page.url)
    until(lambda: browser.find_element(By.CSS_SELECTOR, "#chat"))
    browser.execute_script(RECORD_ANSWER_TEXTS)
    send(browser, question)

    conversation_id = until(lambda: next((c.id for c in api("conversations") if c.title == question), None))
    stored: list[dict[str, str]] = []

    def answered() -> bool:
        stored[:] = api("messages", conversation_id)
        shown = bot_texts(browser)
        return len(stored) == 2 and bool(shown) and letters(shown[-1]) == letters(stored[1]["content"])

    until(answered)
    # The answer streamed: the page showed it growing, several versions, before it was complete.
    seen = browser.execute_script("return window.answerTexts")
    assert len(seen) >= 2 and letters(seen[-1]) == letters(stored[1]["content"]), seen
    assert user_texts(browser) == [question]
    browser.save_screenshot(str(screenshots / "01-streamed-answer.png"))

    # Reload: the conversation is in the sidebar (server-side history), opening it shows the exchange.
    browser.refresh()
    entry = until(lambda: sidebar_entry(browser, question))
    assert bot_texts(browser) == []
    browser.save_screenshot(str(screenshots / "02-after-reload.png"))
    entry[0].click()
    until(lambda: user_texts(browser) == [question]
          and [letters(text) for text in bot_texts(browser)] == [letters(stored[1]["content"])])
    browser.save_screenshot(str(screenshots / "03-reopened.png"))

    # Delete: gone from the sidebar and from the server.
    browser.find_element(By.CSS_SELECTOR, "#delete").click()
    until(lambda: not sidebar_entry(browser, question))
    assert conversation_id not in {c.id for c in api("conversations")}
    browser.save_screenshot(str(screenshots / "04-deleted.png"))


# Where each sidebar entry sits and whether its title is cut with an ellipsis (it overflows its box).
SIDEBAR_LAYOUT = """
return [...document.querySelectorAll("#conversations label")].map(label => {
  const box = label.getBoundingClientRect(), text = label.querySelector("span");
  return {title: text.textContent, x: Math.round(box.left), y: Math.round(box.top), width: Math.round(box.width),
          ellipsis: getComputedStyle(text).textOverflow === "ellipsis" && text.scrollWidth > text.clientWidth};
});
"""


def test_enter_sends_shift_enter_breaks_the_line_and_the_sidebar_lists_newest_first(
    page: LiveServer, browser: WebDriver, screenshots: Path, replicas: tuple[LiveServer, LiveServer]
) -> None:
    def api(method: str, *args: Any) -> Any:
        return call(replicas[0], method, *args, key=API_KEYS["alice"])

    tag = uuid.uuid4().hex[:6]
    first_line = f"A long first question {tag} about lighthouses, the sea, the wind and the stars at night, again"
    browser.get(page.url)
    box = until(lambda: browser.find_element(By.CSS_SELECTOR, "#message textarea"))
    box.send_keys(first_line, Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "and a second line")
    assert box.get_attribute("value") == f"{first_line}\nand a second line"  # Shift+Enter: a new line, not sent
    assert not user_texts(browser)
    box.send_keys(Keys.ENTER)  # Enter: sent
    older = until(lambda: next((c.id for c in api("conversations") if c.title.startswith(first_line)), None))
    until(lambda: len(api("messages", older)) == 2)
    assert api("messages", older)[0]["content"] == f"{first_line}\nand a second line"
    until(lambda: box.get_attribute("value") == "")

    browser.find_element(By.CSS_SELECTOR, "#new-chat").click()
    newer_title = f"Then a short one {tag}"
    send(browser, newer_title)
    until(lambda: any(c.title == newer_title and len(api("messages", c.id)) == 2 for c in api("conversations")))
    entries = until(lambda: [e for e in browser.execute_script(SIDEBAR_LAYOUT) if tag in e["title"]]
                    if len(sidebar_entry(browser, newer_title)) == 1 else None)
    assert [e["title"].startswith(first_line[:20]) for e in entries] == [False, True]  # newest first
    newer, older_entry = entries
    assert newer["x"] == older_entry["x"] and older_entry["y"] > newer["y"]  # a vertical list, not wrapped chips
    assert newer["width"] == older_entry["width"]
    assert older_entry["ellipsis"] and not newer["ellipsis"]  # the long title is cut to the sidebar's width
    browser.save_screenshot(str(screenshots / "07-sidebar.png"))


def test_server_errors_show_in_the_chat(page: LiveServer, browser: WebDriver, screenshots: Path) -> None:
    browser.get(page.url)
    until(lambda: browser.find_element(By.CSS_SELECTOR, "#message textarea"))
    send(browser, "word " * 700)  # over the tiny model's 512-token context, even with every turn dropped
    message = until(lambda: next((t for t in bot_texts(browser) if t.startswith("⚠️")), None))
    assert "maximum context length" in message and "Traceback" not in message
    browser.save_screenshot(str(screenshots / "05-error-in-chat.png"))


def test_stop_aborts_generation_on_the_server(default_page: LiveServer, browser: WebDriver, screenshots: Path,
                                              default_server: LiveServer) -> None:
    def api(method: str, *args: Any) -> Any:
        return call(default_server, method, *args)

    browser.get(default_page.url)
    # First a whole answer from the real model, the README's screenshot; its length capped in the page's settings,
    # as a user would, so that a model that rambles (a third of SmolLM2's answers pass 512 tokens) cannot stall it.
    settings = until(lambda: browser.find_element(By.CSS_SELECTOR, "#settings .label-wrap"))
    settings.click()
    # The page fills model and defaults in one update on load; once the model shows, the limit is the model's.
    until(lambda: browser.find_element(By.CSS_SELECTOR, "#model input").get_attribute("value") == DEFAULT_MODEL_NAME)
    limit = browser.find_element(By.CSS_SELECTOR, "#max-tokens input")
    limit.send_keys(Keys.CONTROL, "a")
    limit.send_keys("400", Keys.TAB)
    assert limit.get_attribute("value") == "400"
    settings.click()
    question = "Give me three tips for brewing good pour-over coffee."
    send(browser, question)
    until(lambda: any(c.title == question and len(api("messages", c.id)) == 2 for c in api("conversations")),
          timeout=300)
    until(lambda: sidebar_entry(browser, question))  # listed after the answer
    browser.save_screenshot(str(screenshots / "00-default-model.png"))
    answer = next(api("items", c.id) for c in api("conversations") if c.title == question)[1]
    assert answer.model_extra["tokens"] <= 400  # the page sent the limit set in its settings

    browser.find_element(By.CSS_SELECTOR, "#new-chat").click()
    until(lambda: not bot_texts(browser))
    question = f"Write a long story about a lighthouse keeper ({uuid.uuid4().hex[:6]})."
    click_send(browser, question)
    until(lambda: bot_texts(browser) and len(bot_texts(browser)[-1]) > 20, timeout=120)
    browser.find_element(By.CSS_SELECTOR, "#stop").click()
    conversation_id = until(lambda: next((c.id for c in api("conversations") if c.title == question), None))
    items = until(lambda: (found := api("items", conversation_id)) and len(found) == 2 and found)
    # The server stopped generating when the page let go of the stream, and kept the partial answer.
    assert items[1].status == "incomplete", items[1].model_extra
    assert items[1].model_extra["finish_reason"] is None and items[1].model_extra["tokens"] < 2048
    until(lambda: total(scrape(default_server.url), "vllm:num_requests_running") == 0, timeout=10)
    browser.save_screenshot(str(screenshots / "06-stopped.png"))


def test_a_message_sent_while_an_answer_streams_stays_in_the_box(default_page: LiveServer, browser: WebDriver,
                                                                  default_server: LiveServer) -> None:
    def api(method: str, *args: Any) -> Any:
        return call(default_server, method, *args)

    browser.get(default_page.url)
    question = f"Write a long story about a lighthouse keeper ({uuid.uuid4().hex[:6]})."
    send(browser, question)
    until(lambda: bot_texts(browser) and len(bot_texts(browser)[-1]) > 20, timeout=120)
    follow_up = "And of Germany?"
    send(browser, follow_up)  # Enter while the answer streams
    box = browser.find_element(By.CSS_SELECTOR, "#message textarea")
    button = browser.find_element(By.CSS_SELECTOR, "#send")
    assert not button.is_enabled()  # refused visibly
    # Listed under the question once the first turn is stored (its preview is the title), i.e. when the answer
    # has ended: as long as the answer takes, which on a slow CPU is past a minute.
    conversation_id = until(lambda: next((c.id for c in api("conversations") if c.title == question), None),
                            timeout=300)
    until(lambda: len(api("messages", conversation_id)) == 2, timeout=300)  # the first answer, whole
    until(lambda: button.is_enabled())
    assert user_texts(browser) == [question] and box.get_attribute("value") == follow_up  # not sent, not lost
    box.send_keys(Keys.ENTER)  # now it is sent
    until(lambda: user_texts(browser) == [question, follow_up])
    browser.find_element(By.CSS_SELECTOR, "#stop").click()  # its answer need not finish: the turn is stored cut
    until(lambda: [m["content"] for m in api("messages", conversation_id)][2:3] == [follow_up], timeout=60)


def test_an_answer_that_repeats_a_sentence_is_stopped_with_a_note(default_page: LiveServer, browser: WebDriver,
                                                                   screenshots: Path,
                                                                   default_server: LiveServer) -> None:
    def api(method: str, *args: Any) -> Any:
        return call(default_server, method, *args)

    browser.get(default_page.url)
    settings = until(lambda: browser.find_element(By.CSS_SELECTOR, "#settings .label-wrap"))
    settings.click()
    until(lambda: browser.find_element(By.CSS_SELECTOR, "#model input").get_attribute("value") == DEFAULT_MODEL_NAME)
    guard = browser.find_element(By.CSS_SELECTOR, "#loop-guard input")
    assert guard.get_attribute("value") == "3"  # on in the page
    guard.send_keys(Keys.CONTROL, "a")
    guard.send_keys("2", Keys.TAB)  # the copied sentence trips it on its second time
    settings.click()
    question = "Copy this text exactly: " + " ".join(["I love the sea."] * 5)  # SmolLM2 copies it, every seed tried
    send(browser, question)
    note = STOPPED_NOTES["repetition"]
    until(lambda: bot_texts(browser) and bot_texts(browser)[-1].endswith(note), timeout=120)
    browser.save_screenshot(str(screenshots / "07-loop-stopped.png"))
    conversation_id = until(lambda: next((c.id for c in api("conversations") if c.title == question), None))
    answer = until(lambda: (found := api("items", conversation_id)) and len(found) == 2 and found[1])
    assert answer.status == "incomplete" and answer.model_extra["finish_reason"] == "repetition", answer.model_extra
    assert most_repeated(api("messages", conversation_id)[1]["content"]) == 2  # stopped at once; the note not stored
    assert until(lambda: browser.find_element(By.CSS_SELECTOR, "#send").is_enabled())
