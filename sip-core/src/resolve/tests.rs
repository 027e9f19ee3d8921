use super::*;

/// An Rng that returns the given values in turn.
struct Fixed(Vec<u64>, usize);

impl Rng for Fixed {
    fn next_u64(&mut self) -> u64 {
        let v = self.0[self.1 % self.0.len()];
        self.1 += 1;
        v
    }
}

fn srv(priority: u16, weight: u16, target: &str) -> Srv {
    Srv {
        priority,
        weight,
        port: 5060,
        target: target.into(),
        ttl: 60,
    }
}

fn names(v: &[Srv]) -> Vec<&str> {
    v.iter().map(|s| s.target.as_str()).collect()
}

// RFC 2782 (Usage rules): weight 0 records first in the running sum; the first record
// whose running sum reaches the draw is selected.
#[test]
fn rfc2782_running_sum_selects_the_first_record_reaching_the_draw() {
    let set = [srv(0, 20, "c"), srv(0, 0, "a"), srv(0, 10, "b")];
    // sum 30, draw 0 % 31 = 0: the weight-0 record placed first reaches it.
    assert_eq!(names(&order_srv(&set, &mut Fixed(vec![0], 0)))[0], "a");
    // draw 5: running sums a=0, c=20 (c was before b in the input): c.
    assert_eq!(names(&order_srv(&set, &mut Fixed(vec![5], 0)))[0], "c");
    // draw 25: a=0, c=20, b=30: b.
    assert_eq!(names(&order_srv(&set, &mut Fixed(vec![25], 0)))[0], "b");
}

// RFC 2782: lower priority first whatever the weights.
#[test]
fn rfc2782_priority_orders_before_weight() {
    let set = [
        srv(20, 65535, "late"),
        srv(10, 0, "early"),
        srv(15, 1, "mid"),
    ];
    for v in [0u64, 1, 7, u64::MAX] {
        assert_eq!(
            names(&order_srv(&set, &mut Fixed(vec![v], 0))),
            ["early", "mid", "late"]
        );
    }
}

// RFC 3263 4.1: NAPTR services map to transports; sips: takes SIPS+D2T only; SIP+D2S
// (SCTP) is not ours.
#[test]
fn rfc3263_4_1_naptr_services_map_to_transports() {
    assert_eq!(naptr_transport("SIP+D2U", false), Some(Transport::Udp));
    assert_eq!(naptr_transport("sip+d2t", false), Some(Transport::Tcp));
    assert_eq!(naptr_transport("SIPS+D2T", false), Some(Transport::Tls));
    assert_eq!(naptr_transport("SIP+D2S", false), None);
    assert_eq!(naptr_transport("SIP+D2T", true), None);
    assert_eq!(naptr_transport("SIPS+D2T", true), Some(Transport::Tls));
    assert_eq!(naptr_transport("E2U+sip", false), None);
}

// RFC 1035 2.3.4: names of at most 253 characters in labels of 1 to 63.
#[test]
fn rfc1035_names_are_bounded_in_length_and_labels() {
    assert!(valid_name("example.test"));
    assert!(valid_name("_sip._udp.example.test."));
    assert!(!valid_name(""));
    assert!(!valid_name("a..b"));
    assert!(!valid_name(&"a".repeat(64)));
    assert!(valid_name(&"a".repeat(63)));
    let long = vec!["abcdefghi"; 26].join("."); // 259 characters
    assert!(!valid_name(&long));
    assert!(!valid_name("bad name.test"));
    assert!(!valid_name("."));
}

// RFC 3263 4.3: a lookup's failed target is marked down and the next one is tried.
#[test]
fn rfc3263_4_3_target_failed_marks_the_current_target_down() {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [1; 32]);
    let uri = SipUri::parse("sip:192.0.2.1:5070").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    let t = r.next_target(now, id).unwrap();
    r.target_failed(now, id, Failure::ServiceUnavailable);
    assert!(r.is_down(now, &t));
    assert_eq!(r.next_target(now, id), None);
    assert!(!r.is_down(now + r.config().down_time, &t));
}
