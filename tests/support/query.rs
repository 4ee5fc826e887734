//! A DNS query as the tests send it: one question, EDNS (payload 1232)
//! with the options given.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RecordType};

/// `name`/`qtype` with id `id` and the EDNS `options`, as wire bytes.
pub fn edns_query(id: u16, name: &str, qtype: RecordType, options: Vec<EdnsOption>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    for o in options {
        e.options_mut().insert(o);
    }
    m.set_edns(e);
    m.to_vec().unwrap()
}
