"""What the command-line modules share: flags defined once, quiet logs. Nothing else imports it."""
