"""Web pages. Each view: access helper, form, one service call, render or redirect."""
