"""Shapes of CAP areas: is a point inside a polygon or a circle? (Latitude/longitude in degrees;
district-scale shapes, so a plane approximation for polygons, the haversine for circles.)"""

from __future__ import annotations

import math
from typing import Any

EARTH_RADIUS_KM = 6371.0088


def in_polygon(lat: float, lon: float, ring: list[list[float]]) -> bool:
    """Ray casting; ``ring`` is [[lat, lon], …] with the first point repeated last."""
    inside = False
    for (lat1, lon1), (lat2, lon2) in zip(ring, ring[1:], strict=False):
        if (lat1 > lat) != (lat2 > lat):
            crossing = lon1 + (lat - lat1) * (lon2 - lon1) / (lat2 - lat1)
            if lon < crossing:
                inside = not inside
    return inside


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def bounding_box(ring: list[list[float]]) -> tuple[float, float, float, float]:
    """(centre lat, centre lon, height km, width km) of the ring's bounding box, with a margin."""
    lats, lons = [p[0] for p in ring], [p[1] for p in ring]
    clat, clon = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    height = distance_km(min(lats), clon, max(lats), clon) + 0.2
    width = max(distance_km(clat, min(lons), clat, max(lons)), 0) + 0.2
    return clat, clon, height, width


def shapes_of(value: Any) -> tuple[list[list[list[float]]], list[dict[str, float]]]:
    """Polygons and circles from an event's data (or anything with those keys)."""
    if not isinstance(value, dict):
        return [], []
    return list(value.get("polygons") or []), list(value.get("circles") or [])
