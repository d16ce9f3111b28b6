//! Encoding guest messages into ring frames without cloning records.
//!
//! [`encode_record`] writes the exact bytes of `GuestMsg::Record { ts_ns,
//! record }` from a borrowed record, so the executor can reuse one sample
//! record for every worker instead of building a fresh message each time.

use serde::ser::{Serialize, SerializeStructVariant, Serializer};
use trace_format::proto::GuestMsg;
use trace_format::record::Record;

/// Variant index of `GuestMsg::Record` (postcard encodes enums by index).
const RECORD_VARIANT: u32 = 1;

struct RecordMsg<'a> {
    ts_ns: u64,
    record: &'a Record,
}

impl Serialize for RecordMsg<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = s.serialize_struct_variant("GuestMsg", RECORD_VARIANT, "Record", 2)?;
        v.serialize_field("ts_ns", &self.ts_ns)?;
        v.serialize_field("record", self.record)?;
        v.end()
    }
}

/// Encodes `GuestMsg::Record { ts_ns, record }` into `buf`.
pub fn encode_record<'b>(
    ts_ns: u64,
    record: &Record,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], postcard::Error> {
    postcard::to_slice(&RecordMsg { ts_ns, record }, buf)
}

/// Encodes any guest message into `buf`.
pub fn encode<'b>(msg: &GuestMsg, buf: &'b mut [u8]) -> Result<&'b mut [u8], postcard::Error> {
    postcard::to_slice(msg, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use trace_format::record::{StepRef, WorkerSample};

    #[test]
    fn same_bytes_as_the_owned_message() {
        let record = Record::WorkerSample(WorkerSample {
            worker: 3,
            iterations: 12345,
            run_ns: 99_000_000,
            cpus_seen: vec![0b11],
            ..WorkerSample::default()
        });
        for record in [record, Record::StepBegin { step: StepRef(2) }] {
            let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
            let borrowed = encode_record(777, &record, &mut a).unwrap().to_vec();
            let owned = GuestMsg::Record { ts_ns: 777, record };
            assert_eq!(borrowed, encode(&owned, &mut b).unwrap());
            let back: GuestMsg = postcard::from_bytes(&borrowed).unwrap();
            assert_eq!(back, owned);
        }
    }
}
