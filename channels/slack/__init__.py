"""Slack channel (Events API webhook or Socket Mode) on slack-bolt."""

from channels.slack.adapter import SlackAdapter, SlackLiveReply

__all__ = ["SlackAdapter", "SlackLiveReply"]
