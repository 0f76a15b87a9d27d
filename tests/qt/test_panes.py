"""The grid stays the largest part of the window at any size: a user at 820x600 saw the
grid shrink to one column while the detail pane kept its width, and an empty strip to
the right of the grid at every width."""

from __future__ import annotations

from pathlib import Path

from albumtagger.app.panes import GRID_SHARE, SIDE_MINIMUM, balance
from tests.qt.test_window import open_indexed


def test_balance_keeps_what_fits_and_gives_way_in_order() -> None:
    assert balance([240, 500, 300], 1400) == [240, 860, 300]  # all fits: as wanted
    narrow = balance([240, 500, 300], 800)
    assert sum(narrow) == 800 and narrow[1] >= 800 * GRID_SHARE
    assert narrow[0] < 240 and narrow[2] < 300  # both side panes narrowed
    assert narrow[0] >= SIDE_MINIMUM[0] and narrow[2] >= SIDE_MINIMUM[1]
    folded = balance([240, 500, 300], 600)  # no room for both at their least
    assert folded == [0, 300, 300]  # the tags list folds: the detail holds the chips
    assert balance([240, 500, 0], 600) == [240, 360, 0]  # the detail folded by the user
    assert balance([240, 500, 300], 350) == [175, 175, 0]  # no room for the detail's least
    assert balance([240, 500, 300], 250) == [0, 250, 0]  # the grid alone
    assert balance([0, 500, 0], 300) == [0, 300, 0]  # folded by the user: stay folded


def columns(grid) -> int:
    return max(1, grid.viewport().width() // grid.gridSize().width())


def test_the_grid_stays_the_largest_part(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    splitter, grid = window.splitter, window.grid
    window.resize(1400, 900)
    qtbot.waitUntil(lambda: window.width() == 1400)
    splitter.setSizes([240, 800, 300])
    wide = splitter.sizes()
    assert wide[0] == 240 and wide[2] == 300

    window.resize(820, 600)
    qtbot.waitUntil(lambda: window.width() == 820)
    tags, middle, detail = splitter.sizes()
    assert middle >= max(tags, detail) and middle >= sum(splitter.sizes()) * GRID_SHARE
    assert columns(grid) >= 2

    state = splitter.saveState()  # closed narrow: what it keeps is what the user gave
    splitter.setSizes([100, 100, 100])
    splitter.restoreState(state)
    assert splitter.wanted()[0] == 240 and splitter.wanted()[2] == 300

    window.resize(1400, 900)  # wide again: the panes come back as the user left them
    qtbot.waitUntil(lambda: splitter.sizes()[2] == 300)
    assert splitter.sizes()[0] == 240


def test_the_grid_fills_its_width(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    grid = window.grid
    for width in (1000, 1111, 1290):
        window.resize(width, 700)
        qtbot.waitUntil(lambda w=width: window.width() == w)
        cell, room = grid.gridSize().width(), grid.viewport().width()
        fit = room // (grid.thumb_size() + 12)  # the columns of unwidened cells that fit
        assert room - fit * cell <= fit  # no strip a cell could fill
        first_row = {
            grid.visualRect(grid.model().index(r, 0)).x()
            for r in range(grid.model().rowCount())
            if grid.visualRect(grid.model().index(r, 0)).y()
            == grid.visualRect(grid.model().index(0, 0)).y()
        }
        assert len(first_row) == min(fit, grid.model().rowCount())  # as laid out
        assert grid.visualRect(grid.model().index(0, 0)).width() == cell  # photo centred
