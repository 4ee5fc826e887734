use super::*;
use crate::status::PrefixState;

fn doc(states: &[(&str, Want)]) -> Document {
    Document {
        speaker: "exabgp".into(),
        drained: false,
        drain_file: false,
        prefixes: states
            .iter()
            .map(|(p, w)| PrefixState {
                state: *w,
                ..PrefixState::new(*p)
            })
            .collect(),
    }
}

#[test]
fn only_changes_are_said_and_a_first_look_says_everything() {
    let mut f = Follower::default();
    let a = "192.0.2.53/32";
    assert_eq!(
        f.follow(&doc(&[(a, Want::Withdrawn)])),
        vec!["withdraw route 192.0.2.53/32 next-hop self"]
    );
    assert!(f.follow(&doc(&[(a, Want::Withdrawn)])).is_empty());
    assert_eq!(
        f.follow(&doc(&[(a, Want::Announced)])),
        vec!["announce route 192.0.2.53/32 next-hop self"]
    );
    assert!(f.follow(&doc(&[(a, Want::Announced)])).is_empty());
    assert_eq!(
        f.follow(&doc(&[(a, Want::Draining)])),
        vec!["announce route 192.0.2.53/32 next-hop self community [65535:0]"]
    );
}

#[test]
fn losing_boltz_or_a_prefix_withdraws_what_was_announced() {
    let mut f = Follower::default();
    let (a, b) = ("192.0.2.53/32", "2001:db8::53/128");
    f.follow(&doc(&[(a, Want::Announced), (b, Want::Withdrawn)]));
    assert_eq!(
        f.follow(&doc(&[(b, Want::Withdrawn)])),
        vec!["withdraw route 192.0.2.53/32 next-hop self"]
    );
    f.follow(&doc(&[(a, Want::Draining), (b, Want::Announced)]));
    assert_eq!(
        f.lost(),
        vec![
            "withdraw route 192.0.2.53/32 next-hop self",
            "withdraw route 2001:db8::53/128 next-hop self"
        ]
    );
    assert!(f.lost().is_empty());
    // Back: said again.
    assert_eq!(f.follow(&doc(&[(a, Want::Announced)])).len(), 1);
}
