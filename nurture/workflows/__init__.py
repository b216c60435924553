"""What crosses domains: ATS events, saving and acting on candidates, CSV imports, retention.
Workflows call several core domains; core never calls a workflow."""
