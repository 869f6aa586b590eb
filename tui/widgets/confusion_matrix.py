"""The confusion matrix at any size: counts in separated columns where they fit, else a heatmap.

A test set of 1,000 samples per class has four-digit counts, and 47 classes do not fit 80 columns as
numbers, so the widget picks one of two drawings for the room it has: counts in right-aligned columns
one space apart with short class labels, or a heatmap of one glyph (one or two columns) per cell whose
density and color say the count's share of its true class's row. Either way a cursor (arrow keys) sits
on a cell and the two lines above the grid read it in words: true class, predicted class, count, rate.
A grid larger than the widget scrolls to keep the cursor in view.
"""
from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget

from neuraterm.tui.shorten import middle

SHADES = ("grey23", "grey37", "dark_cyan", "cyan3", "cyan1")  # numbers: off-diagonal shares, small to large
# heatmap: (share of the row below which, glyph, off-diagonal color); a zero count is a faint dot
LEVELS = ((0.01, "░", "grey50"), (0.05, "▒", "yellow3"), (0.20, "▓", "dark_orange"), (2.0, "█", "red1"))
DIAGONAL = ((0.5, "grey50"), (0.8, "green4"), (0.9, "green3"), (2.0, "green1"))
READING_ROWS = 2
LABEL_WIDTH = 6  # the longest row label in the numbers drawing


def short_labels(names: list[str], width: int) -> list[str]:
    """Names cut to `width`; when cutting makes two alike, the class index stands in front."""
    cut = [n[:width] for n in names]
    if len(set(cut)) == len(cut):
        return cut
    digits = len(str(len(names) - 1))
    return [f"{k}{n}"[:width] if width > digits else str(k)[:width] for k, n in enumerate(names)]


def glued(pieces: list[tuple[str, str]]) -> Text:
    """Styled pieces as one line, each piece's leading spaces moved to the end of the piece before
    (unless that one is reversed): SVG renderers of screenshots drop the spaces a span starts with,
    which makes right-aligned counts look left-aligned in snapshot images."""
    text = Text()
    for k, (piece, style) in enumerate(pieces):
        body = piece.lstrip(" ")
        pad = piece[:len(piece) - len(body)]
        text.append(pad, style=pieces[k - 1][1] if k and "reverse" not in pieces[k - 1][1] else "")
        text.append(body, style=style)
    return text


class ConfusionMatrix(Widget, can_focus=True):
    DEFAULT_CSS = "ConfusionMatrix { height: 1fr; } ConfusionMatrix:focus { background: $boost; }"
    BINDINGS = [
        Binding("up", "move(-1, 0)", "Up", show=False), Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False), Binding("right", "move(0, 1)", "Right", show=False),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.matrix: list[list[int]] = []
        self.names: list[str] = []
        self.cursor = (0, 0)

    def set_matrix(self, matrix: list[list[int]], names: list[str]) -> None:
        self.matrix, self.names = [list(map(int, row)) for row in matrix], list(names)
        pairs = [(c, i, j) for i, row in enumerate(self.matrix) for j, c in enumerate(row) if i != j and c]
        top = max(pairs, key=lambda p: p[0], default=(0, 0, 0))
        self.cursor = (top[1], top[2])  # start on the most confused pair
        self.refresh(layout=True)

    def action_move(self, down: int, right: int) -> None:
        n = len(self.matrix)
        if n:
            self.cursor = (min(max(self.cursor[0] + down, 0), n - 1), min(max(self.cursor[1] + right, 0), n - 1))
            self.refresh()

    # -- geometry ---------------------------------------------------------------------------
    def count_width(self) -> int:
        """The digits of the largest count, and room for a 3-letter label above it (2 for 1-letter names)."""
        longest = max((len(n) for n in self.names), default=1)
        return max(min(3, max(longest, 2)), len(str(max((max(row) for row in self.matrix), default=0))))

    def label_width(self) -> int:
        return max(3, min(LABEL_WIDTH, max((len(n) for n in self.names), default=1)))

    def numbers_width(self) -> int:
        return self.label_width() + len(self.matrix) * (self.count_width() + 1)

    def drawing(self, width: int) -> tuple[str, int]:
        """("numbers", column width) where every column fits, else ("heatmap", 2 or 1 columns a cell)."""
        n = len(self.matrix)
        if self.numbers_width() <= width:
            return "numbers", self.count_width()
        return "heatmap", 2 if self.heat_label_width() + 1 + 2 * n <= width else 1

    def heat_label_width(self) -> int:
        digits = len(str(len(self.matrix) - 1))
        return digits + 1 + min(5, max((len(n) for n in self.names), default=1))

    def header_rows(self, kind: str, cell: int) -> int:
        return 2 if kind == "heatmap" and cell == 1 and len(self.matrix) > 10 else 1

    def wanted_height(self, width: int) -> int:
        """Rows to show every class (the screen sizes the body from this)."""
        kind, cell = self.drawing(width)
        return READING_ROWS + self.header_rows(kind, cell) + len(self.matrix) + (kind == "heatmap")

    def wanted_width(self) -> int:
        n = len(self.matrix)
        return min(self.numbers_width(), self.heat_label_width() + 1 + 2 * n) if n > 10 else self.numbers_width()

    @staticmethod
    def window(cursor: int, count: int, room: int) -> range:
        """`room` consecutive indices out of `count`, the cursor inside them (centered when it can be)."""
        room = max(1, min(room, count))
        start = min(max(cursor - room // 2, 0), count - room)
        return range(start, start + room)

    # -- drawing ----------------------------------------------------------------------------
    def reading(self, width: int) -> Text:
        """The cell under the cursor in words, on two lines."""
        i, j = self.cursor
        total = sum(self.matrix[i])
        count = self.matrix[i][j]
        rate = count / total if total else 0.0
        what = "correct" if i == j else "confused" if count else "never confused"
        line1 = f"true {self.names[i]} → predicted {self.names[j]}"
        if len(line1) > width:
            each = max(3, (width - len("true  → pred ")) // 2)
            line1 = f"true {middle(self.names[i], each)} → pred {middle(self.names[j], each)}"
        line2 = next((line for line in (f"{count:,} of {total:,} ({100 * rate:.1f}% of the row), {what}",
                                         f"{count:,} of {total:,} ({100 * rate:.1f}%), {what}")
                      if len(line) <= width), f"{count:,} of {total:,} ({100 * rate:.1f}%)")
        return Text.assemble((line1[:width], "bold"), "\n", line2[:width])

    def render(self) -> Text:
        if not self.matrix:
            return Text("")
        width, height = self.size.width, self.size.height
        kind, cell = self.drawing(width)
        header = self.header_rows(kind, cell)
        n = len(self.matrix)
        label_w = self.label_width() if kind == "numbers" else self.heat_label_width()
        rows = self.window(self.cursor[0], n, height - READING_ROWS - header - (kind == "heatmap"))
        cols = self.window(self.cursor[1], n, (width - label_w) // (cell + (kind == "numbers")))
        lines = [*self.reading(width).split(), *self.header(kind, cell, label_w, cols).split(),
                 *(self.row(kind, cell, label_w, i, cols) for i in rows)]
        if kind == "heatmap":
            lines.append(self.legend(rows, cols, width))
        for line in lines:
            line.truncate(width)  # never wrapped: a wrapped row would read as another class
        return Text("\n").join(lines)

    def header(self, kind: str, cell: int, label_w: int, cols: range) -> Text:
        if kind == "numbers":
            labels = short_labels(self.names, cell)
            return glued([("t\\p".ljust(label_w), "bold"), *((" " + labels[j].rjust(cell),
                                                             "bold reverse" if j == self.cursor[1] else "bold")
                                                            for j in cols)])
        lines = []
        for digit in ([10, 1] if self.header_rows(kind, cell) == 2 else [1]):
            line = Text()
            line.append(("" if lines else "t\\p").ljust(label_w + 1), style="bold")
            for j in cols:
                mark = str(j // digit % 10) if digit == 1 or j % 10 == 0 else " "
                line.append(mark.ljust(cell), style="bold reverse" if j == self.cursor[1] else "bold")
            lines.append(line)
        return Text("\n").join(lines)

    def row(self, kind: str, cell: int, label_w: int, i: int, cols: range) -> Text:
        total = max(sum(self.matrix[i]), 1)
        if kind == "numbers":
            label = short_labels(self.names, label_w)[i].ljust(label_w)
        else:
            digits = len(str(len(self.matrix) - 1))
            label = f"{i:>{digits}} {self.names[i][:label_w - digits - 1]}".ljust(label_w) + " "
        pieces = [(label, "bold reverse" if i == self.cursor[0] else "")]
        for j in cols:
            count = self.matrix[i][j]
            glyph, style = self.cell(kind, cell, i, j, count, count / total)
            pieces.append((" " * (kind == "numbers") + glyph, style + " reverse" if (i, j) == self.cursor else style))
        return glued(pieces)

    @staticmethod
    def cell(kind: str, cell: int, i: int, j: int, count: int, share: float) -> tuple[str, str]:
        if kind == "numbers":
            if i == j:
                style = "bold green"
            elif count == 0:
                style = "grey37"
            else:
                style = "bold " + SHADES[min(len(SHADES) - 1, 1 + int(share * 20))]
            return f"{count:>{cell}}", style
        gap = " " * (cell - 1)  # two columns a cell: the glyph and a gap, so neighbours stay apart
        if count == 0:
            return "·" + gap, "grey37"
        if i == j:
            color = next(c for limit, c in DIAGONAL if share < limit)
            return "█" + gap, color
        glyph, color = next((g, c) for limit, g, c in LEVELS if share < limit)
        return glyph + gap, color

    def legend(self, rows: range, cols: range, width: int) -> Text:
        """What the glyphs mean, and which part of a grid larger than the widget is shown."""
        text = Text.assemble(("· ", "grey37"), ("0 ", ""), ("░", "grey50"), ("<1% ", ""), ("▒", "yellow3"),
                             ("<5% ", ""), ("▓", "dark_orange"), ("<20% ", ""), ("█", "red1"), ("≥20% of row  ", ""))
        n = len(self.matrix)
        if len(rows) < n or len(cols) < n:
            text.append(f"rows {rows.start + 1}-{rows.stop} cols {cols.start + 1}-{cols.stop} of {n}", style="dim")
        text.truncate(width)
        return text
