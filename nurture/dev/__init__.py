"""For a laptop, a demo and the tests: embedded Redis and SMTP capture, ``nurture up`` and demo
data. Production code never imports this package; only the CLI does."""
