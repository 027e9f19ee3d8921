//! UPDATE (RFC 3311), sans-IO: when an UPDATE may be sent with an offer, and how a received
//! one is answered given the dialog's offer/answer state. UPDATE works in early and confirmed
//! dialogs alike (section 5); it is a target refresh request (its Contact, and the Contact of
//! its 2xx, replace the remote target), which the dialog applies.

use super::reliable::TAG_100REL;
use crate::Rng;

/// The option tags a UA using these extensions lists in Supported.
pub(crate) fn supported_tags(rel100: bool, timer: bool) -> Option<String> {
    let tags: Vec<&str> = [(rel100, TAG_100REL), (timer, super::timer::TAG_TIMER)]
        .into_iter()
        .filter_map(|(on, tag)| on.then_some(tag))
        .collect();
    (!tags.is_empty()).then(|| tags.join(", "))
}

/// The offer/answer state of a dialog as far as UPDATE cares (RFC 3264, RFC 3311 section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfferState {
    /// No offer/answer exchange has completed yet (an early dialog whose INVITE offer is not
    /// answered reliably, or an offerless INVITE).
    Initial,
    /// No offer outstanding: a new one may be made.
    Stable,
    /// We made an offer and wait for the answer.
    LocalOffer,
    /// We received an offer and have not answered it yet (an UPDATE or re-INVITE being
    /// processed included).
    RemoteOffer,
}

/// How to answer an UPDATE (RFC 3311 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateVerdict {
    /// Process it: hand its offer to the application (the answer goes in the 2xx), or answer
    /// 200 at once when it carries no offer (a session refresh or target refresh).
    Process,
    /// 491: it carries an offer while ours is outstanding (glare).
    Glare,
    /// 500 with `Retry-After: seconds` (0 to 10, random): it carries an offer while we have
    /// not answered one we received.
    Busy {
        /// The Retry-After value.
        retry_after: u32,
    },
}

/// The verdict on an UPDATE that carries an offer or not (`has_offer`), in a dialog whose
/// offer/answer state is `state` (RFC 3311 section 5.2).
pub(crate) fn on_update(state: OfferState, has_offer: bool, rng: &mut dyn Rng) -> UpdateVerdict {
    if !has_offer {
        return UpdateVerdict::Process;
    }
    match state {
        OfferState::Stable => UpdateVerdict::Process,
        OfferState::LocalOffer => UpdateVerdict::Glare,
        // Section 5.1 forbids an offer before the first exchange completes; the INVITE's
        // offer is still being answered, so the peer is told to come back, as for 5.2.
        OfferState::RemoteOffer | OfferState::Initial => UpdateVerdict::Busy {
            retry_after: retry_after(rng),
        },
    }
}

/// May we send an UPDATE with an offer now? Only when no offer is outstanding either way and,
/// in an early dialog, the first exchange has completed (RFC 3311 section 5.1).
pub(crate) fn may_offer(state: OfferState) -> bool {
    state == OfferState::Stable
}

/// A Retry-After between 0 and 10 seconds (RFC 3311 section 5.2, "randomly chosen").
pub(crate) fn retry_after(rng: &mut dyn Rng) -> u32 {
    (rng.next_u64() % 11) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    #[test]
    fn update_offer_while_ours_is_pending_is_491() {
        // RFC 3311 5.2: offer received while our offer awaits its answer → 491
        let mut rng = SeededRng::new([1; 32]);
        assert_eq!(
            on_update(OfferState::LocalOffer, true, &mut rng),
            UpdateVerdict::Glare
        );
    }

    #[test]
    fn update_offer_while_one_is_unanswered_is_500_with_retry_after() {
        // RFC 3311 5.2: offer received while we have not answered one → 500, Retry-After 0-10
        let mut rng = SeededRng::new([2; 32]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            match on_update(OfferState::RemoteOffer, true, &mut rng) {
                UpdateVerdict::Busy { retry_after } => {
                    assert!(retry_after <= 10);
                    seen.insert(retry_after);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(seen.len() > 5, "randomly chosen: {seen:?}");
    }

    #[test]
    fn update_in_early_and_confirmed_dialogs_is_processed_when_stable() {
        // RFC 3311 5.2: an offer in a stable dialog is processed; answer in the 2xx (5.2)
        let mut rng = SeededRng::new([3; 32]);
        assert_eq!(
            on_update(OfferState::Stable, true, &mut rng),
            UpdateVerdict::Process
        );
        // an UPDATE without offer (refresh) is answered whatever the state
        for s in [
            OfferState::Initial,
            OfferState::Stable,
            OfferState::LocalOffer,
            OfferState::RemoteOffer,
        ] {
            assert_eq!(on_update(s, false, &mut rng), UpdateVerdict::Process);
        }
    }

    #[test]
    fn update_offer_only_once_the_first_exchange_completed() {
        // RFC 3311 5.1: no UPDATE offer before the initial offer/answer completes or while
        // an offer is outstanding
        assert!(may_offer(OfferState::Stable));
        assert!(!may_offer(OfferState::Initial));
        assert!(!may_offer(OfferState::LocalOffer));
        assert!(!may_offer(OfferState::RemoteOffer));
        let mut rng = SeededRng::new([4; 32]);
        assert!(matches!(
            on_update(OfferState::Initial, true, &mut rng),
            UpdateVerdict::Busy { .. }
        ));
    }

    #[test]
    fn supported_lists_the_extension_tags() {
        // RFC 3262 4 and RFC 4028 7.1: Supported: 100rel, timer
        assert_eq!(supported_tags(true, true).as_deref(), Some("100rel, timer"));
        assert_eq!(supported_tags(false, true).as_deref(), Some("timer"));
        assert_eq!(supported_tags(false, false), None);
        // RFC 3311 5.1: Allow tells the peer it may send UPDATE (and PRACK)
        assert!(super::super::ALLOW.contains("UPDATE") && super::super::ALLOW.contains("PRACK"));
    }
}
