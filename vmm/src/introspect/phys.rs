//! A bounds-checked view of guest-physical RAM, shared by every backend.
//!
//! The guest owns this memory and may change it at any moment (unless frozen),
//! so reads copy bytes out and nothing is ever trusted: every access is
//! checked against the RAM regions and fails instead of panicking.
use std::fmt;
use std::sync::Arc;

use memmap2::MmapRaw;

/// A run of guest-physical addresses backed by host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First guest-physical address.
    pub gpa: u64,
    pub len: u64,
    /// Offset of `gpa` in the host mapping.
    pub offset: u64,
}

/// Out-of-RAM accesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest-physical range {gpa:#x}+{len} is outside guest RAM")]
pub struct MemError {
    pub gpa: u64,
    pub len: usize,
}

/// Guest RAM as the host sees it; cheap to clone.
#[derive(Clone)]
pub struct GuestMemory {
    base: *mut u8,
    map_len: u64,
    regions: Arc<[Region]>,
    _keep: Arc<dyn Send + Sync>,
}

impl fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestMemory")
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

// SAFETY: the pointer is only used for bounds-checked byte copies into and out
// of a mapping kept alive by `_keep`; no references into it are handed out.
unsafe impl Send for GuestMemory {}
// SAFETY: as above; concurrent copies race only with the guest, as any VMM's do.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    /// Guest RAM in a shared file mapping (QEMU's memory-backend-file).
    /// `None` when a region lies outside the mapping.
    pub fn from_mmap(map: Arc<MmapRaw>, regions: Vec<Region>) -> Option<Self> {
        let base = map.as_mut_ptr();
        let len = u64::try_from(map.len()).ok()?;
        // SAFETY: `base` is valid for `len` bytes as long as `map` lives, and the
        // mapping is kept alive by the Arc stored in the result.
        unsafe { Self::from_raw(base, len, regions, map) }
    }

    /// Guest RAM at `base`..`base + map_len` in this process.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `map_len` bytes for as long
    /// as `keep` is alive.
    pub unsafe fn from_raw(
        base: *mut u8,
        map_len: u64,
        mut regions: Vec<Region>,
        keep: Arc<dyn Send + Sync>,
    ) -> Option<Self> {
        for r in &regions {
            r.gpa.checked_add(r.len)?;
            if r.offset.checked_add(r.len)? > map_len {
                return None;
            }
        }
        regions.sort_by_key(|r| r.gpa);
        Some(GuestMemory {
            base,
            map_len,
            regions: regions.into(),
            _keep: keep,
        })
    }

    /// The RAM regions, by address.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Host offset of `gpa..gpa+len` when it lies inside one region.
    fn locate(&self, gpa: u64, len: usize) -> Result<usize, MemError> {
        let err = MemError { gpa, len };
        let n = u64::try_from(len).map_err(|_| err)?;
        let end = gpa.checked_add(n).ok_or(err)?;
        let r = self
            .regions
            .iter()
            .find(|r| r.gpa <= gpa && end <= r.gpa + r.len)
            .ok_or(err)?;
        let off = r.offset + (gpa - r.gpa);
        debug_assert!(off + n <= self.map_len);
        usize::try_from(off).map_err(|_| err)
    }

    /// Copies `buf.len()` bytes from `gpa`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let off = self.locate(gpa, buf.len())?;
        // SAFETY: `locate` checked the range lies inside a region, and regions
        // lie inside the mapping (checked at construction), kept alive by `_keep`.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(off), buf.as_mut_ptr(), buf.len()) }
        Ok(())
    }

    /// Copies `data` to `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let off = self.locate(gpa, data.len())?;
        // SAFETY: as in `read`; the mapping is writable by construction.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(off), data.len()) }
        Ok(())
    }

    /// A little-endian u64 at `gpa`.
    pub fn read_u64(&self, gpa: u64) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A little-endian unsigned value of 1, 2, 4 or 8 bytes at `gpa`.
    pub fn read_uint(&self, gpa: u64, width: usize) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        let part = b.get_mut(..width).ok_or(MemError { gpa, len: width })?;
        self.read(gpa, part)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Calls `f(gpa, bytes)` over all of RAM in chunks of up to `chunk` bytes,
    /// consecutive chunks overlapping by `overlap`; stops when `f` returns true.
    pub fn scan(&self, chunk: usize, overlap: usize, mut f: impl FnMut(u64, &[u8]) -> bool) {
        let mut buf = vec![0u8; chunk];
        let step = u64::try_from(chunk.saturating_sub(overlap).max(1)).unwrap_or(1);
        for r in self.regions.iter() {
            let mut gpa = r.gpa;
            while gpa < r.gpa + r.len {
                let n = usize::try_from((r.gpa + r.len - gpa).min(chunk as u64)).unwrap_or(chunk);
                if self.read(gpa, &mut buf[..n]).is_err() || f(gpa, &buf[..n]) {
                    return;
                }
                gpa += step;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Anonymous memory of `len` bytes as one region at gpa 0.
    pub fn anon(len: usize) -> GuestMemory {
        let map = memmap2::MmapMut::map_anon(len).unwrap();
        let regions = vec![Region {
            gpa: 0,
            len: len as u64,
            offset: 0,
        }];
        GuestMemory::from_mmap(Arc::new(MmapRaw::from(map)), regions).unwrap()
    }

    #[test]
    fn reads_and_writes_are_bounds_checked() {
        let m = anon(8192);
        m.write(8, &0x1122_3344_5566_7788u64.to_le_bytes()).unwrap();
        assert_eq!(m.read_u64(8).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(m.read_uint(8, 2).unwrap(), 0x7788);
        assert!(m.read_u64(8190).is_err());
        assert!(m.read_u64(u64::MAX - 3).is_err());
        assert!(m.read_uint(0, 9).is_err());
        assert!(m.write(8192, &[1]).is_err());
    }

    #[test]
    fn regions_map_to_offsets() {
        let map = memmap2::MmapMut::map_anon(8192).unwrap();
        let regions = vec![
            Region {
                gpa: 0,
                len: 4096,
                offset: 0,
            },
            Region {
                gpa: 1 << 32,
                len: 4096,
                offset: 4096,
            },
        ];
        let m = GuestMemory::from_mmap(Arc::new(MmapRaw::from(map)), regions).unwrap();
        m.write(1 << 32, &[9]).unwrap();
        let mut b = [0u8];
        m.read(1 << 32, &mut b).unwrap();
        assert_eq!(b, [9]);
        assert!(m.read(4096, &mut b).is_err());
        let bad = vec![Region {
            gpa: 0,
            len: 8193,
            offset: 0,
        }];
        let map = memmap2::MmapMut::map_anon(8192).unwrap();
        assert!(GuestMemory::from_mmap(Arc::new(MmapRaw::from(map)), bad).is_none());
    }
}
