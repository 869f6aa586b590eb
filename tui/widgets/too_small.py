"""The notice that covers a screen when the terminal is below 80x24, with the size it needs.

The app mounts one on every screen it shows (a widget mounted on the app lands on the default
screen, under the mode screens, where nobody sees it); the app's `-too-small` class shows them.
"""
from __future__ import annotations

from textual.widget import Widget

MIN_WIDTH, MIN_HEIGHT = 80, 24


class TooSmall(Widget):
    SCOPED_CSS = False  # its rule starts at the App (the class that says the terminal is too small)
    DEFAULT_CSS = """
    TooSmall { display: none; }
    App.-too-small TooSmall {
        display: block; dock: top; width: 100%; height: 100%; overlay: screen;
        content-align: center middle; text-align: center; background: $error-darken-2; color: $text;
    }
    """

    def render(self) -> str:
        width, height = self.app.size
        more = [f"{MIN_WIDTH - width} more columns" if width < MIN_WIDTH else "",
                f"{MIN_HEIGHT - height} more rows" if height < MIN_HEIGHT else ""]
        return (f"terminal too small: {width}x{height}\n"
                f"neuraterm needs at least {MIN_WIDTH}x{MIN_HEIGHT}\n"
                f"({' and '.join(m for m in more if m)}); keys wait until it fits; q quits (a run keeps training)")
