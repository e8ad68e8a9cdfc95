"""The business date of an ad hoc submission: yesterday's midnight in the DataWorks region's scheduling time zone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# The time zone whose midnight starts a business date in each DataWorks region (its scheduling clock); a `cn-*`
# region not listed runs on China time, any other unlisted one on UTC.
REGION_ZONES = {
    "cn-hongkong": "Asia/Hong_Kong",
    "ap-southeast-1": "Asia/Singapore",
    "ap-southeast-3": "Asia/Kuala_Lumpur",
    "ap-southeast-5": "Asia/Jakarta",
    "ap-southeast-6": "Asia/Manila",
    "ap-southeast-7": "Asia/Bangkok",
    "ap-southeast-2": "Australia/Sydney",
    "ap-northeast-1": "Asia/Tokyo",
    "ap-northeast-2": "Asia/Seoul",
    "ap-south-1": "Asia/Kolkata",
    "me-east-1": "Asia/Dubai",
    "me-central-1": "Asia/Riyadh",
    "eu-central-1": "Europe/Berlin",
    "eu-west-1": "Europe/London",
    "us-west-1": "America/Los_Angeles",
    "us-east-1": "America/New_York",
}
# Without a time zone database (a Windows Python without tzdata), each zone's standard offset from UTC, in hours.
STANDARD_OFFSETS = {"Asia/Shanghai": 8, "Asia/Hong_Kong": 8, "Asia/Singapore": 8, "Asia/Kuala_Lumpur": 8,
                    "Asia/Jakarta": 7, "Asia/Manila": 8, "Asia/Bangkok": 7, "Australia/Sydney": 10, "Asia/Tokyo": 9,
                    "Asia/Seoul": 9, "Asia/Kolkata": 5.5, "Asia/Dubai": 4, "Asia/Riyadh": 3, "Europe/Berlin": 1,
                    "Europe/London": 0, "America/Los_Angeles": -8, "America/New_York": -5, "UTC": 0}


@dataclass(frozen=True)
class BusinessDate:
    """The business date of a submission: `ms` is its 00:00 in the region's time zone, as the API takes it."""

    date: dt.date
    ms: int
    zone: str


def region_zone(region: str) -> str:
    """The time zone of a DataWorks region (REGION_ZONES)."""
    return REGION_ZONES.get(region) or ("Asia/Shanghai" if region.startswith("cn-") else "UTC")


def business_date(region: str, now: dt.datetime | None = None) -> BusinessDate:
    """Yesterday at 00:00 in the region's time zone: the business date of a task run today, as the console gives
    it to an ad hoc run; ExecuteAdhocWorkflowInstance's BizDate and ListTaskInstances' Bizdate both carry it."""
    name = region_zone(region)
    zone: dt.tzinfo
    try:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(name)
    except Exception:  # no time zone database: the standard offset, off by an hour only in summer time
        zone = dt.timezone(dt.timedelta(hours=STANDARD_OFFSETS.get(name, 0)), name)
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone)
    day = local.date() - dt.timedelta(days=1)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return BusinessDate(day, int(midnight.timestamp()) * 1000, name)


__all__ = ["REGION_ZONES", "STANDARD_OFFSETS", "BusinessDate", "business_date", "region_zone"]
