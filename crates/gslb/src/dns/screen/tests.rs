use super::*;

/// A query for `www.example.com` A with `flags` (bytes 2 and 3), section
/// counts `an, ns, ar`, and `tail` appended after the question.
fn query(flags: [u8; 2], counts: [u16; 3], tail: &[u8]) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, flags[0], flags[1], 0, 1];
    for c in counts {
        q.extend_from_slice(&c.to_be_bytes());
    }
    q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    q.extend_from_slice(tail);
    q
}

/// An OPT record: payload 1232, `version`, options `rdata`.
fn opt_rr(version: u8, rdata: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, version, 0, 0];
    o.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    o.extend_from_slice(rdata);
    o
}

const ECS_OK: &[u8] = &[0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69];
const ECS_BAD: &[u8] = &[0, 8, 0, 8, 0, 1, 24, 0, 81, 2, 69, 0];

fn rcode(s: &Screen<'_>) -> Option<ResponseCode> {
    match s {
        Screen::Error { rcode, .. } => Some(*rcode),
        _ => None,
    }
}

#[test]
fn a_plain_query_passes_as_it_is() {
    let q = query([1, 0], [0, 0, 0], &[]);
    match screen(&q) {
        Screen::Query {
            clean,
            question,
            opt: None,
        } => {
            assert!(matches!(clean, Cow::Borrowed(_)));
            assert_eq!(&*clean, &q[..]);
            assert_eq!(question, &q[12..]);
            assert_eq!(qtype_of(question), Some(1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_opt_passes_with_only_the_options_boltz_reads() {
    let mut rdata = vec![0, 100, 0, 3, 1, 2, 3]; // unknown, dropped
    rdata.extend_from_slice(ECS_OK);
    rdata.extend_from_slice(&[0, 3, 0, 0]); // NSID
    rdata.extend_from_slice(&[0, 12, 0, 200]); // padding ...
    rdata.extend_from_slice(&[0; 200]);
    let q = query([1, 0], [0, 0, 1], &opt_rr(0, &rdata));
    let Screen::Query { clean, opt, .. } = screen(&q) else {
        panic!()
    };
    let o = opt.unwrap();
    assert!(o.nsid);
    assert_eq!(o.payload, 1232);
    assert_eq!(o.ecs.unwrap().source_prefix, 24);
    assert_eq!(
        &clean[..],
        &query([1, 0], [0, 0, 1], &opt_rr(0, ECS_OK))[..]
    );
}

#[test]
fn other_opcodes_get_notimp_with_no_flag_of_query() {
    // opcode 15 with TC, RD, RA, Z, AD, CD and AA set, and a question.
    let q = query([0x7f, 0xf0], [0, 0, 0], &[]);
    let s = screen(&q);
    assert_eq!(
        s,
        Screen::Error {
            rcode: ResponseCode::NotImp,
            question: None,
            opt: None
        }
    );
    let r = error_reply(&q, ResponseCode::NotImp, None, None, 1232, None, None);
    assert_eq!(r, [0x12, 0x34, 0xf8, 0x04, 0, 0, 0, 0, 0, 0, 0, 0]);
    // With an OPT, ours comes back (NSID too, when asked).
    let q = query([0x28, 0], [0, 0, 1], &opt_rr(0, &[0, 3, 0, 0]));
    let Screen::Error { opt, .. } = screen(&q) else {
        panic!()
    };
    let r = error_reply(
        &q,
        ResponseCode::NotImp,
        None,
        opt.as_ref(),
        1232,
        Some(b"a"),
        None,
    );
    assert_eq!(&r[..12], [0x12, 0x34, 0xa8, 0x04, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        &r[12..],
        [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 5, 0, 3, 0, 1, b'a']
    );
}

#[test]
fn what_a_query_does_not_need_is_formerr_before_any_parse() {
    let formerr = Some(ResponseCode::FormErr);
    // Records in the answer or authority section.
    let rr = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x01\x02\x03\x04";
    assert_eq!(rcode(&screen(&query([1, 0], [1, 0, 0], rr))), formerr);
    assert_eq!(rcode(&screen(&query([1, 0], [0, 1, 0], rr))), formerr);
    // No question, two questions.
    let mut q = query([1, 0], [0, 0, 0], &[]);
    q[5] = 0;
    assert_eq!(rcode(&screen(&q)), formerr);
    q[5] = 2;
    assert_eq!(rcode(&screen(&q)), formerr);
    // A pointer in the question: a chain of them would cost thousands of
    // hops to follow; none is followed.
    let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1];
    assert_eq!(rcode(&screen(&q)), formerr);
    q[12] = 0x40; // an extended label type
    assert_eq!(rcode(&screen(&q)), formerr);
    // Too many additional records, too many options, two OPTs, an OPT not
    // owned by the root, trailing bytes, a record cut short.
    assert_eq!(rcode(&screen(&query([1, 0], [0, 0, 4], &[]))), formerr);
    let many: Vec<u8> = (0..=MAX_OPTIONS).flat_map(|_| [0u8, 100, 0, 0]).collect();
    assert_eq!(
        rcode(&screen(&query([1, 0], [0, 0, 1], &opt_rr(0, &many)))),
        formerr
    );
    let two = [opt_rr(0, &[]), opt_rr(0, &[])].concat();
    assert_eq!(rcode(&screen(&query([1, 0], [0, 0, 2], &two))), formerr);
    let mut owned = opt_rr(0, &[]);
    owned.splice(0..1, [1, b'x', 0]);
    assert_eq!(rcode(&screen(&query([1, 0], [0, 0, 1], &owned))), formerr);
    assert_eq!(rcode(&screen(&query([1, 0], [0, 0, 0], &[0]))), formerr);
    let cut = opt_rr(0, ECS_OK);
    assert_eq!(
        rcode(&screen(&query([1, 0], [0, 0, 1], &cut[..cut.len() - 1]))),
        formerr
    );
}

#[test]
fn badvers_wins_and_a_readable_opt_is_answered_with_ours() {
    // Version 1 with a malformed ECS: BADVERS (RFC 6891 §6.1.3).
    let q = query([1, 0], [0, 0, 1], &opt_rr(1, ECS_BAD));
    let s = screen(&q);
    assert_eq!(rcode(&s), Some(ResponseCode::BADVERS));
    let Screen::Error { question, opt, .. } = s else {
        panic!()
    };
    let r = error_reply(
        &q,
        ResponseCode::BADVERS,
        question,
        opt.as_ref(),
        1232,
        None,
        None,
    );
    // RD kept, rcode low bits 0, question echoed, extended rcode 1 (16).
    assert_eq!(&r[2..12], [0x81, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    assert_eq!(&r[r.len() - 11..], [0, 0, 41, 0x04, 0xd0, 1, 0, 0, 0, 0, 0]);
    // Version 0 with the same ECS: FORMERR, with our OPT.
    let q = query([1, 0x10], [0, 0, 1], &opt_rr(0, ECS_BAD));
    let Screen::Error {
        rcode,
        question,
        opt,
    } = screen(&q)
    else {
        panic!()
    };
    assert_eq!(rcode, ResponseCode::FormErr);
    let r = error_reply(&q, rcode, question, opt.as_ref(), 1232, None, None);
    assert_eq!(&r[2..4], [0x81, 0x11], "RD and CD kept on QUERY");
    assert_eq!(r[11], 1, "our OPT");
}

#[test]
fn a_tsig_is_passed_over_and_short_bytes_are_dropped() {
    // A TSIG-shaped record after the OPT: skipped, not parsed.
    let tsig = b"\x03key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x02\xab\xcd";
    let tail = [opt_rr(0, &[]), tsig.to_vec()].concat();
    let q = query([1, 0], [0, 0, 2], &tail);
    let Screen::Query { clean, .. } = screen(&q) else {
        panic!()
    };
    assert_eq!(&clean[..], &query([1, 0], [0, 0, 1], &opt_rr(0, &[]))[..]);
    assert_eq!(screen(&q[..11]), Screen::Drop);
    let mut resp = query([1, 0], [0, 0, 0], &[]);
    resp[2] |= 0x80;
    assert_eq!(screen(&resp), Screen::Drop);
}
