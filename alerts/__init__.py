"""alerts: threshold rules over the read API's statistics, their evaluation, and notification (e-mail, webhook)."""
