"""The benchmark engine: plans in, typed events and run records out. No UI code lives here."""
