"""Word when a job ends: email and webhook notifications, delivered from the outbox."""
