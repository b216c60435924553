"""What comes back: opens and clicks, unsubscribes, bounces and complaints, replies, ratings,
and the numbers the dashboard and campaign pages show."""
