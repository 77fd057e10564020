"""Geometry of the dashboard's bar chart (server-rendered SVG: no script, readable without it)."""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy

from reports.selectors import DayFigures

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 36, 28, 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    markers: tuple[Bar, ...]  # days that failed or were not aggregated
    gridlines: tuple[tuple[float, int], ...]  # (y, value)
    labels: tuple[tuple[float, str], ...]  # (x, "11-28") every few days
    baseline: float
    series: tuple[tuple[str, str], ...]  # (label, colour)


SERIES = (
    ("transfers_sent", gettext_lazy("Transfers sent"), "#0b5cad"),
    ("downloads", gettext_lazy("Downloads"), "#2da44e"),
)


def daily_chart(days: list[DayFigures]) -> Chart:
    """Two bars a day (transfers sent, downloads); a failed or missing day shows as a red or grey stub."""
    peak = max([int(d.figures.get(name, 0)) for d in days for name, _, _ in SERIES] + [1])
    step = _nice_step(peak)
    top = step * -(-peak // step)
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(days), 1)
    bar_width = slot * 0.38
    bars, markers, labels = [], [], []
    for index, day in enumerate(days):
        x = LEFT + index * slot + slot * 0.12
        if index % 5 == 0 or index == len(days) - 1:
            labels.append((LEFT + index * slot + slot / 2, day.day.strftime("%m-%d")))
        if day.status != "ok":
            colour = "#b42318" if day.status == "failed" else "#8c959f"
            what = "aggregation failed" if day.status == "failed" else "not aggregated"
            markers.append(Bar(x, HEIGHT - BOTTOM - 6, slot * 0.76, 6, colour, f"{day.day.isoformat()}: {what}"))
            continue
        for offset, (name, label, colour) in enumerate(SERIES):
            value = int(day.figures.get(name, 0))
            height = plot_height * value / top
            bars.append(
                Bar(
                    x + offset * bar_width,
                    HEIGHT - BOTTOM - height,
                    bar_width,
                    height,
                    colour,
                    f"{day.day.isoformat()}: {value} {label.lower()}",
                )
            )
    gridlines = tuple((HEIGHT - BOTTOM - plot_height * v / top, v) for v in range(0, top + 1, step))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=tuple(bars),
        markers=tuple(markers),
        gridlines=gridlines,
        labels=tuple(labels),
        baseline=HEIGHT - BOTTOM,
        series=tuple((label, colour) for _, label, colour in SERIES),
    )


def _nice_step(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if peak / step <= 5:
            return step
    return 10 ** len(str(peak))
