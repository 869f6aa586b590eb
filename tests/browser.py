"""A real browser for tests: headless Chromium driven through the DevTools protocol.

Chromium is started with its own empty profile and with background networking off (this machine's
network is closed); the protocol is spoken over aiohttp's websocket client, which the `web` extra
brings anyway. Screenshots are compared with Pillow (a dev dependency).
"""
from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--remote-debugging-port=0"]


class Browser:
    """`async with Browser(width, height) as page:` then `await page.goto(url)`, `screenshot()`, `press(key)`."""

    def __init__(self, width: int = 1280, height: int = 800):
        self.width, self.height = width, height
        self._ids = itertools.count(1)
        self.seen: list[str] = []  # protocol events received, by method

    async def __aenter__(self) -> "Browser":
        import aiohttp
        self.profile = tempfile.mkdtemp(prefix="nt-chromium-")
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={self.width},{self.height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        endpoint = None
        deadline = time.time() + 30
        while endpoint is None and time.time() < deadline:
            line = await asyncio.to_thread(self.proc.stderr.readline)
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            endpoint = match.group(1) if match else None
            if not line and self.proc.poll() is not None:
                break
        if endpoint is None:
            raise RuntimeError("Chromium did not start its DevTools endpoint")
        self.http = aiohttp.ClientSession()
        port = endpoint.split(":")[2].split("/")[0]
        async with self.http.get(f"http://127.0.0.1:{port}/json/list") as response:
            page = next(t for t in await response.json() if t["type"] == "page")
        self.ws = await self.http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")
        await self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                        deviceScaleFactor=1, mobile=False)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def send(self, method: str, **params) -> dict:
        message_id = next(self._ids)
        await self.ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads((await self.ws.receive()).data)
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.seen.append(reply.get("method"))

    async def goto(self, url: str, timeout: float = 30) -> None:
        """Navigate and wait for the page's load event."""
        self.seen = []
        await self.send("Page.navigate", url=url)
        deadline = time.time() + timeout
        while "Page.loadEventFired" not in self.seen and time.time() < deadline:
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout=max(0.1, deadline - time.time()))
            except asyncio.TimeoutError:
                break
            self.seen.append(json.loads(message.data).get("method"))

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def screenshot(self) -> bytes:
        return base64.b64decode((await self.send("Page.captureScreenshot", format="png"))["data"])

    async def click(self, x: int, y: int) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def press(self, text: str) -> None:
        """Type a printable key the way a person would (keydown with its text, then keyup)."""
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, text=text if kind == "keyDown" else "",
                            key=text, unmodifiedText=text)


def distinct_colors(png: bytes, box: tuple[int, int, int, int] | None = None) -> int:
    """How many different colors a screenshot (or the `box` of it) holds: a blank page has a handful,
    a terminal app with text and charts has many."""
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if box:
        image = image.crop(box)
    return len(image.getcolors(maxcolors=1 << 24))


def changed_fraction(a: bytes, b: bytes) -> float:
    """The share of pixels that differ between two screenshots of the same size."""
    from PIL import Image, ImageChops
    first, second = (Image.open(io.BytesIO(x)).convert("RGB") for x in (a, b))
    difference = ImageChops.difference(first, second).convert("L").point(lambda v: 255 if v else 0)
    return difference.histogram()[255] / (first.width * first.height)
