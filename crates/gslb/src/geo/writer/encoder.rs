//! The MaxMind DB data format: control bytes and sizes, strings, numbers,
//! maps, pointers, and map keys written once and pointed to afterwards.

use std::collections::HashMap;
use std::io;

use super::{invalid, MmdbWriter, RecordKey};

const TYPE_POINTER: u8 = 1;
pub(super) const TYPE_STRING: u8 = 2;
const TYPE_DOUBLE: u8 = 3;
pub(super) const TYPE_UINT16: u8 = 5;
pub(super) const TYPE_UINT32: u8 = 6;
pub(super) const TYPE_MAP: u8 = 7;
pub(super) const TYPE_UINT64: u8 = 9;
pub(super) const TYPE_ARRAY: u8 = 11;

/// Encoder for the MaxMind DB data format.
#[derive(Default)]
pub(super) struct Encoder {
    pub(super) buf: Vec<u8>,
    /// Offsets of map keys already written, for pointer reuse.
    keys: HashMap<&'static str, usize>,
}

impl Encoder {
    pub(super) fn header(&mut self, type_num: u8, size: usize) -> io::Result<()> {
        // Sizes from 29 on spill into 1-3 big-endian bytes after the control
        // (and extended type) byte, each band starting where the last ended.
        let (size_bits, extra_len, extra) = match size {
            0..=28 => (size as u8, 0, 0),
            29..=284 => (29, 1, size - 29),
            285..=65_820 => (30, 2, size - 285),
            65_821..=16_843_036 => (31, 3, size - 65_821),
            _ => return Err(invalid(format!("value of {size} bytes is too large"))),
        };
        let extra = (extra as u32).to_be_bytes();
        let extra = &extra[4 - extra_len..];
        if type_num <= 7 {
            self.buf.push((type_num << 5) | size_bits);
        } else {
            self.buf.push(size_bits);
            self.buf.push(type_num - 7);
        }
        self.buf.extend_from_slice(extra);
        Ok(())
    }

    pub(super) fn string(&mut self, s: &str) -> io::Result<()> {
        self.header(TYPE_STRING, s.len())?;
        self.buf.extend_from_slice(s.as_bytes());
        Ok(())
    }

    pub(super) fn uint(&mut self, type_num: u8, v: u64) -> io::Result<()> {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        self.header(type_num, bytes.len() - skip)?;
        self.buf.extend_from_slice(&bytes[skip..]);
        Ok(())
    }

    fn double(&mut self, v: f64) -> io::Result<()> {
        self.header(TYPE_DOUBLE, 8)?;
        self.buf.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    pub(super) fn pointer(&mut self, offset: usize) {
        let ptr = TYPE_POINTER << 5;
        if offset < 2048 {
            self.buf.push(ptr | (offset >> 8) as u8);
            self.buf.push(offset as u8);
        } else if offset < 526_336 {
            let v = offset - 2048;
            self.buf.push(ptr | (1 << 3) | (v >> 16) as u8);
            self.buf.extend_from_slice(&(v as u16).to_be_bytes());
        } else if offset < 134_744_064 {
            let v = offset - 526_336;
            self.buf.push(ptr | (2 << 3) | (v >> 24) as u8);
            self.buf.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
        } else {
            self.buf.push(ptr | (3 << 3));
            self.buf.extend_from_slice(&(offset as u32).to_be_bytes());
        }
    }

    fn key(&mut self, key: &'static str) -> io::Result<()> {
        match self.keys.get(key) {
            Some(&offset) => self.pointer(offset),
            None => {
                self.keys.insert(key, self.buf.len());
                self.string(key)?;
            }
        }
        Ok(())
    }

    pub(super) fn record(&mut self, writer: &MmdbWriter, rec: &RecordKey) -> io::Result<()> {
        let country = writer.code(rec.country);
        let continent = writer.code(rec.continent);
        let entries = 1 + usize::from(country.is_some()) + usize::from(continent.is_some());
        self.header(TYPE_MAP, entries)?;
        self.key("location")?;
        self.header(TYPE_MAP, 2)?;
        self.key("latitude")?;
        self.double(f64::from_bits(rec.lat))?;
        self.key("longitude")?;
        self.double(f64::from_bits(rec.lon))?;
        if let Some(country) = country {
            self.key("country")?;
            self.header(TYPE_MAP, 1)?;
            self.key("iso_code")?;
            self.string(country)?;
        }
        if let Some(continent) = continent {
            self.key("continent")?;
            self.header(TYPE_MAP, 1)?;
            self.key("code")?;
            self.string(continent)?;
        }
        Ok(())
    }
}
