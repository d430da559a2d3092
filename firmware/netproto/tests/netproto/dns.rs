use weir_netproto::dns::{Answer, ParseError, Query, QueryError, MAX_LABEL_LEN};

fn query(id: u16, name: &str) -> Result<Vec<u8>, QueryError> {
    let mut buf = [0u8; 512];
    let n = Query { id, name }.encode(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// The question of a query for broker.weir.example, from offset 12 to 37.
#[rustfmt::skip]
const QUESTION: &[u8] = &[
    6, b'b', b'r', b'o', b'k', b'e', b'r',  // offset 12
    4, b'w', b'e', b'i', b'r',              // offset 19
    7, b'e', b'x', b'a', b'm', b'p', b'l', b'e',
    0,
    0, 1, 0, 1,                             // type A, class IN
];

/// A response to query 0xBEEF as a recursive resolver sends it: the question, then
/// `answers` answer records.
fn response(flags: [u8; 2], answers: u16, records: &[u8]) -> Vec<u8> {
    let mut m = vec![0xBE, 0xEF, flags[0], flags[1], 0, 1];
    m.extend_from_slice(&answers.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(QUESTION);
    m.extend_from_slice(records);
    m
}

/// Standard response, recursion desired and available, no error.
const OK: [u8; 2] = [0x81, 0x80];

#[rustfmt::skip]
const TWO_A_RECORDS: &[u8] = &[
    0xC0, 12,               // name: pointer to the question's name
    0, 1, 0, 1,             // A, IN
    0, 0, 1, 44,            // TTL 300 s
    0, 4, 203, 0, 113, 10,  // 203.0.113.10
    0xC0, 12,
    0, 1, 0, 1,
    0, 0, 1, 44,
    0, 4, 203, 0, 113, 11,
];

#[test]
fn a_query_has_the_rfc_1035_header_question_and_labels() {
    #[rustfmt::skip]
    let expected = [
        &[0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..], // id, RD, one question
        QUESTION,
    ]
    .concat();
    assert_eq!(query(0xBEEF, "broker.weir.example").unwrap(), expected);
}

#[test]
fn final_dots_of_a_name_are_ignored() {
    assert_eq!(
        query(7, "broker.weir.example.").unwrap(),
        query(7, "broker.weir.example").unwrap()
    );
    assert_eq!(
        query(7, "localhost..").unwrap(),
        query(7, "localhost").unwrap()
    );
}

#[test]
fn an_empty_name_or_an_empty_label_is_refused() {
    for name in ["", ".", "a..b", ".a", "a.b..c"] {
        assert_eq!(query(1, name), Err(QueryError::EmptyLabel), "{name:?}");
    }
}

#[test]
fn a_label_over_63_bytes_is_refused() {
    let fits = format!("{}.example", "a".repeat(MAX_LABEL_LEN));
    assert!(query(1, &fits).is_ok());
    let long = format!("{}.example", "a".repeat(MAX_LABEL_LEN + 1));
    assert_eq!(query(1, &long), Err(QueryError::LabelTooLong));
}

#[test]
fn a_name_over_255_bytes_on_the_wire_is_refused() {
    // Four labels of 62 bytes and one of 1: 4 * 63 + 2 + 1 = 255 bytes with the final zero.
    let label = "b".repeat(62);
    let fits = format!("{label}.{label}.{label}.{label}.c");
    assert_eq!(query(1, &fits).unwrap().len(), 12 + 255 + 4);
    let long = format!("{label}.{label}.{label}.{label}.cc");
    assert_eq!(query(1, &long), Err(QueryError::NameTooLong));
}

#[test]
fn a_buffer_smaller_than_the_query_is_refused() {
    let n = query(1, "broker.weir.example").unwrap().len();
    let mut buf = vec![0u8; n];
    let q = Query {
        id: 1,
        name: "broker.weir.example",
    };
    assert_eq!(q.encode(&mut buf), Ok(n));
    assert_eq!(q.encode(&mut buf[..n - 1]), Err(QueryError::BufferTooSmall));
}

#[test]
fn a_response_with_compression_pointers_gives_its_first_address() {
    let m = response(OK, 2, TWO_A_RECORDS);
    assert_eq!(
        Answer::parse(&m),
        Ok(Answer {
            id: 0xBEEF,
            address: [203, 0, 113, 10]
        })
    );
}

#[test]
fn a_cname_before_the_a_record_is_passed_over() {
    #[rustfmt::skip]
    let records = [
        0xC0, 12,                   // broker.weir.example (offset 37)
        0, 5, 0, 1,                 // CNAME, IN
        0, 0, 14, 16,               // TTL 3600 s
        0, 7,                       // 7 bytes of data, from offset 49:
        4, b'e', b'd', b'g', b'e',  //   edge
        0xC0, 19,                   //   .weir.example (pointer into the question)
        0xC0, 49,                   // edge.weir.example: pointer into the CNAME's data
        0, 1, 0, 1,
        0, 0, 0, 60,
        0, 4, 198, 51, 100, 7,
    ];
    let m = response(OK, 2, &records);
    assert_eq!(m[49], 4, "the pointer targets the CNAME's first label");
    assert_eq!(Answer::parse(&m).unwrap().address, [198, 51, 100, 7]);
}

#[test]
fn an_answer_name_written_out_in_full_is_skipped_as_well() {
    let mut records = QUESTION[..QUESTION.len() - 4].to_vec();
    records.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 192, 0, 2, 1]);
    let m = response(OK, 1, &records);
    assert_eq!(Answer::parse(&m).unwrap().address, [192, 0, 2, 1]);
}

#[test]
fn a_response_with_only_an_aaaa_record_has_no_address() {
    let mut records = vec![0xC0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16];
    records.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8]);
    records.extend_from_slice(&[0; 12]);
    assert_eq!(
        Answer::parse(&response(OK, 1, &records)),
        Err(ParseError::NoAddress)
    );
    assert_eq!(
        Answer::parse(&response(OK, 0, &[])),
        Err(ParseError::NoAddress)
    );
}

#[test]
fn an_a_record_whose_data_is_not_four_bytes_is_passed_over() {
    #[rustfmt::skip]
    let records = [
        0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 5, 1, 2, 3, 4, 5,
        0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 9, 9, 9, 9,
    ];
    assert_eq!(
        Answer::parse(&response(OK, 2, &records)).unwrap().address,
        [9, 9, 9, 9]
    );
}

#[test]
fn a_server_error_is_refused_with_its_rcode() {
    // NXDOMAIN.
    assert_eq!(
        Answer::parse(&response([0x81, 0x83], 0, &[])),
        Err(ParseError::ServerError(3))
    );
    // SERVFAIL, even with a record.
    assert_eq!(
        Answer::parse(&response([0x81, 0x82], 2, TWO_A_RECORDS)),
        Err(ParseError::ServerError(2))
    );
}

#[test]
fn a_query_is_not_a_response() {
    let q = query(0xBEEF, "broker.weir.example").unwrap();
    assert_eq!(Answer::parse(&q), Err(ParseError::NotAResponse));
}

#[test]
fn a_response_cut_anywhere_before_its_first_address_is_refused() {
    let m = response(OK, 2, TWO_A_RECORDS);
    let first_address_end = 12 + QUESTION.len() + 16;
    assert_eq!(m[first_address_end - 1], 10);
    for len in 0..12 {
        assert_eq!(Answer::parse(&m[..len]), Err(ParseError::TooShort), "{len}");
    }
    for len in 12..first_address_end {
        assert_eq!(
            Answer::parse(&m[..len]),
            Err(ParseError::Truncated),
            "{len}"
        );
    }
    assert!(Answer::parse(&m[..first_address_end]).is_ok());
}

#[test]
fn more_records_announced_than_present_is_truncated() {
    // Three answers announced, one present and not an A record.
    let records = [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xC0, 12];
    assert_eq!(
        Answer::parse(&response(OK, 3, &records)),
        Err(ParseError::Truncated)
    );
}
