"""Slack channel (Events API webhook or Socket Mode) on slack-bolt."""

from channels.slack.adapter import SlackAdapter

__all__ = ["SlackAdapter"]
