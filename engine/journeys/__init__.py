"""Journeys: customers moving through campaigns, one step at a time (see CAMPAIGN_FORMAT.md)."""
