"""Example smc-stream plugins (see docs/plugins.md, "Writing a plugin").

* ``trade_streak`` (enricher, trades): runs of consecutive up/down ticks per symbol.
* ``range_breakout`` (detector): a close beyond the high/low of the previous N bars.
* ``price_level`` (alert rule): the price crossing configured levels.
"""
