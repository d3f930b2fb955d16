"""The feed poller: feeds in (YAML or OPML list), new entries out to ``feeds.entries``."""
