"""Metrics: mmseg / mmdet metrics with the zero-shot (seen / unseen) protocol, region classification."""
