//! What a lookup returns ([`GeoHit`], [`Location`]), and the few parts of a
//! GeoIP2-City record decoded to build it.

use ipnet::IpNet;
use serde::Deserialize;

/// A point in degrees, as the database gives it (checked to be in range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

/// Result of a lookup. `network` is the prefix the database treats
/// uniformly around the address (useful e.g. as an ECS scope), also when it
/// has no data there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoHit {
    pub location: Option<Location>,
    pub network: IpNet,
    /// Upper-case ISO 3166-1 alpha-2 code.
    pub country: Option<[u8; 2]>,
    /// Upper-case continent code (EU, NA, ...).
    pub continent: Option<[u8; 2]>,
}

impl GeoHit {
    /// The hit for a decoded record in `network`; invalid parts are left out.
    pub(super) fn of_record(raw: RawRecord<'_>, network: IpNet) -> Self {
        GeoHit {
            location: raw.location.and_then(RawLocation::valid),
            network,
            country: raw.country.and_then(|c| code(c.iso_code?)),
            continent: raw.continent.and_then(|c| code(c.code?)),
        }
    }

    pub fn country_str(&self) -> Option<&str> {
        self.country
            .as_ref()
            .and_then(|c| std::str::from_utf8(c).ok())
    }

    pub fn continent_str(&self) -> Option<&str> {
        self.continent
            .as_ref()
            .and_then(|c| std::str::from_utf8(c).ok())
    }

    pub(super) fn miss(network: IpNet) -> Self {
        GeoHit {
            location: None,
            network,
            country: None,
            continent: None,
        }
    }
}

/// A record decoded for its location only (the query path's lookup).
#[derive(Deserialize)]
pub(super) struct RawLocationOnly {
    location: Option<RawLocation>,
}

impl RawLocationOnly {
    /// The location, if the record has a valid one.
    pub(super) fn valid(self) -> Option<Location> {
        self.location.and_then(RawLocation::valid)
    }
}

impl RawLocation {
    fn valid(self) -> Option<Location> {
        let (lat, lon) = (self.latitude?, self.longitude?);
        let valid = (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
        valid.then_some(Location { lat, lon })
    }
}

fn code(s: &str) -> Option<[u8; 2]> {
    match *s.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// The only parts of a GeoIP2-City record we need; everything else (city
/// names in many languages, subdivisions, ...) is skipped, not decoded, and
/// strings borrow from the mapping.
#[derive(Deserialize)]
pub(super) struct RawRecord<'a> {
    location: Option<RawLocation>,
    #[serde(borrow)]
    country: Option<RawCountry<'a>>,
    #[serde(borrow)]
    continent: Option<RawContinent<'a>>,
}

#[derive(Deserialize)]
struct RawLocation {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct RawCountry<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawContinent<'a> {
    code: Option<&'a str>,
}
