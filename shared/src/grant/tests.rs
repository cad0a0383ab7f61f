use super::*;

fn sub(raw: &str) -> Sub {
    Sub::parse(raw).unwrap()
}

fn profile(raw: &str) -> Profile {
    Profile::bare(sub(raw))
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap()
}

fn sealed(byte: u8, expires_at: Option<i64>) -> SealedToken {
    SealedToken {
        ciphertext: Ciphertext(vec![byte]),
        ids: TokenIds::of(&Secret::new(format!("token-{byte}"))),
        issued_ms: Some(T0 + i64::from(byte)),
        expires_at,
    }
}

const T0: i64 = 1_900_000_000;

#[test]
fn google_token_identifiers() {
    let ids = TokenIds::of(&Secret::new("1//0abcdefghijklmnopqrstuvwxyz"));
    // base64(SHA-512(SHA-512(token))): 64 bytes → 88 characters.
    assert_eq!(ids.hash.len(), 88);
    assert_eq!(ids.prefix_hash, TokenIds::hash_prefix("1//0abcdefghijkl"));
    assert!(!ids.prefix_hash.contains("abcdefghijkl"));
}

#[test]
fn a_sign_in_without_refresh_token_keeps_the_stored_one_and_scopes_only_grow() {
    let a: ScopeSet = ["openid"].into_iter().collect();
    let b: ScopeSet = ["calendar"].into_iter().collect();
    let first = Grant::authorized(None, &profile("u"), &a, Some(&sealed(1, Some(T0 + DAY))), at(T0));
    let second = Grant::authorized(Some(&first), &profile("u"), &b, None, at(T0 + 10));
    assert_eq!(second.refresh_token, first.refresh_token);
    assert_eq!(second.scopes, a.union(&b));
    assert_eq!(second.version, 2);
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.expires_at(), Some(T0 + DAY), "the stored token's expiry stays");
    assert_eq!(second.last_used_at, Some(T0), "no new token: no new use");
}

#[test]
fn a_new_token_without_expiry_clears_the_old_expiry_and_its_notice() {
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let limited = Grant::authorized(None, &profile("u"), &openid, Some(&sealed(1, Some(T0 + DAY))), at(T0));
    let noticed = limited.noticed(T0 + DAY, at(T0 + 5)).unwrap();
    assert_eq!(noticed.expiry_noticed, Some(T0 + DAY));
    let renewed = Grant::authorized(
        Some(&noticed),
        &profile("u"),
        &openid,
        Some(&sealed(2, None)),
        at(T0 + 9),
    );
    assert_eq!((renewed.expires_at(), renewed.expiry_noticed), (None, None));
    assert_eq!(renewed.last_used_at, Some(T0 + 9));
}

#[test]
fn a_token_issued_before_the_stored_one_never_replaces_it() {
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let later = Grant::authorized(None, &profile("u"), &openid, Some(&sealed(9, None)), at(T0 + 9));
    let earlier = Grant::authorized(
        Some(&later),
        &profile("u"),
        &openid,
        Some(&sealed(3, None)),
        at(T0 + 10),
    );
    assert_eq!(
        earlier.refresh_token, later.refresh_token,
        "a concurrent, older sign-in wrote last"
    );
    let unknown = SealedToken {
        issued_ms: None,
        ..sealed(1, None)
    };
    let legacy = Grant::authorized(None, &profile("u"), &openid, Some(&unknown), at(T0));
    let next = Grant::authorized(
        Some(&legacy),
        &profile("u"),
        &openid,
        Some(&sealed(2, None)),
        at(T0 + 2),
    );
    assert_eq!(next.refresh_token.unwrap().ciphertext, Ciphertext(vec![2]));
}

#[test]
fn dead_tokens_are_dropped_once_and_a_new_sign_in_reactivates() {
    let grant = Grant::authorized(
        None,
        &profile("u"),
        &ScopeSet::default(),
        Some(&sealed(1, None)),
        at(T0),
    );
    let dead = grant.dead("invalid_grant", at(T0 + 1)).unwrap();
    assert_eq!(
        (dead.status, dead.refresh_token.is_none()),
        (GrantStatus::ReauthorizationRequired, true)
    );
    assert_eq!(dead.status_reason.as_deref(), Some("invalid_grant"));
    assert!(dead.dead("invalid_grant", at(T0 + 2)).is_none());
    let online_only = Grant::authorized(Some(&dead), &profile("u"), &ScopeSet::default(), None, at(T0 + 3));
    assert_eq!(online_only.status, GrantStatus::ReauthorizationRequired);
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let back = Grant::authorized(Some(&dead), &profile("u"), &openid, Some(&sealed(2, None)), at(T0 + 4));
    assert_eq!((back.status, back.status_reason), (GrantStatus::Active, None));
    assert_eq!(
        back.scopes, openid,
        "a reauthorization starts over with what Google granted"
    );
}

#[test]
fn uses_are_recorded_at_most_daily_and_keep_the_version() {
    let grant = Grant::authorized(
        None,
        &profile("u"),
        &ScopeSet::default(),
        Some(&sealed(1, None)),
        at(T0),
    );
    assert!(grant.used(at(T0 + DAY - 1)).is_none());
    let used = grant.used(at(T0 + DAY)).unwrap();
    assert_eq!((used.last_used_at, used.version), (Some(T0 + DAY), grant.version));
    let rotated = grant.rotated(sealed(2, Some(T0 + 3 * DAY)), at(T0 + 7));
    assert_eq!((rotated.last_used_at, rotated.version), (Some(T0 + 7), 2));
    assert_eq!(rotated.expires_at(), Some(T0 + 3 * DAY));
}

#[test]
fn the_sweep_is_due_at_the_notice_or_the_keep_alive_whichever_comes_first() {
    let policy = SweepPolicy::default();
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let unlimited = Grant::authorized(None, &profile("u"), &openid, Some(&sealed(1, None)), at(T0));
    assert_eq!(unlimited.sweep_due(&policy), Some(T0 + 150 * DAY));
    let week = Grant::authorized(
        None,
        &profile("u"),
        &openid,
        Some(&sealed(1, Some(T0 + 7 * DAY))),
        at(T0),
    );
    assert_eq!(week.sweep_due(&policy), Some(T0), "notice due at once");
    let noticed = week.noticed(T0 + 7 * DAY, at(T0)).unwrap();
    assert_eq!(noticed.sweep_due(&policy), Some(T0 + 150 * DAY), "once per expiry");
    assert_eq!(
        unlimited.dead("invalid_grant", at(T0)).unwrap().sweep_due(&policy),
        None
    );
}

#[test]
fn sweep_buckets_are_never_in_the_past_of_the_write_and_stay_with_the_user() {
    let policy = SweepPolicy::default();
    let openid: ScopeSet = ["openid"].into_iter().collect();
    // Expiry in three days: the notice was due four days ago, the bucket is today's.
    let grant = Grant::authorized(
        None,
        &profile("u"),
        &openid,
        Some(&sealed(1, Some(T0 + 3 * DAY))),
        at(T0),
    );
    let slot = grant.sweep_slot(&policy, T0).unwrap();
    assert_eq!(slot.due_at, T0 - 4 * DAY);
    let today = OffsetDateTime::from_unix_timestamp(T0).unwrap().date();
    assert!(slot.bucket.starts_with(&sweep_bucket(today, 0)[..10]), "{slot:?}");
    let later = grant.sweep_slot(&policy, T0 + 2 * DAY).unwrap();
    assert_eq!(slot.bucket[10..], later.bucket[10..], "the shard is the user's");
    assert_eq!(sweep_bucket(time::macros::date!(2031 - 01 - 02), 5), "2031-01-02#5");
}

#[test]
fn removal_reasons_round_trip() {
    for reason in [RemovalReason::User, RemovalReason::AccountPurged] {
        assert_eq!(RemovalReason::parse(reason.as_str()), Some(reason));
    }
    assert_eq!(RemovalReason::AccountPurged.as_str(), "risc:account-purged");
    assert_eq!(RemovalReason::parse("risc:other"), None);
}

#[test]
fn token_identifiers_match_google_s_known_answers() {
    // Computed independently: base64(SHA-512(SHA-512(token))) and hex SHA-256 of
    // the first 16 characters.
    let ids = TokenIds::of(&Secret::new("1//0abcdefghijklmnopqrstuvwxyz"));
    assert_eq!(
        ids.hash,
        "EOiK4/AZqIs/aeU1dL/hnZm7+cSA4HDViXLJx+aIi/Gcq+olzAApjCYGdi6LRKGAypPGxAyYda5kB10sQGJuqg=="
    );
    assert_eq!(
        ids.prefix_hash,
        "9be745c9d429250d78ed83b4cedf20165093e01590ffbb1f5d9b720f2d3c7ee6"
    );
}

#[test]
fn purposes_and_statuses_have_their_stored_names() {
    assert_eq!(TokenPurpose::RefreshToken.as_str(), "refresh_token");
    assert_eq!(TokenPurpose::AccessToken.as_str(), "access_token");
    for status in [GrantStatus::Active, GrantStatus::ReauthorizationRequired] {
        assert_eq!(GrantStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(
        GrantStatus::ReauthorizationRequired.as_str(),
        "reauthorization_required"
    );
    assert_eq!(GrantStatus::parse("dead"), None);
}

#[test]
fn a_grant_holds_only_its_own_ciphertext() {
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let grant = Grant::authorized(None, &profile("u"), &openid, Some(&sealed(1, None)), at(T0));
    assert!(grant.holds(&Ciphertext(vec![1])));
    assert!(!grant.holds(&Ciphertext(vec![2])));
    let online = Grant::authorized(None, &profile("u"), &openid, None, at(T0));
    assert!(!online.holds(&Ciphertext(vec![1])));
}

#[test]
fn every_change_but_a_use_is_a_new_version_with_its_time() {
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let grant = Grant::authorized(None, &profile("u"), &openid, Some(&sealed(1, Some(T0 + DAY))), at(T0));
    let noticed = grant.noticed(T0 + DAY, at(T0 + 60)).unwrap();
    assert_eq!(
        (noticed.version, noticed.updated_at.as_str()),
        (2, "2030-03-17T17:47:40Z")
    );
    assert!(noticed.noticed(T0 + DAY, at(T0 + 61)).is_none(), "once per expiry");
    let dead = noticed.dead("invalid_grant", at(T0 + 120)).unwrap();
    assert_eq!((dead.version, dead.updated_at.as_str()), (3, "2030-03-17T17:48:40Z"));
    let rotated = noticed.rotated(sealed(2, Some(T0 + 2 * DAY)), at(T0 + 180));
    assert_eq!(
        (rotated.version, rotated.updated_at.as_str()),
        (3, "2030-03-17T17:49:40Z")
    );
    assert_eq!(rotated.expiry_noticed, None, "a new token's expiry is noticed anew");
    assert_eq!(grant.created_at, rotated.created_at);
}

#[test]
fn of_two_tokens_the_later_issued_is_kept_and_an_undated_one_gives_way() {
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let first = Grant::authorized(None, &profile("u"), &openid, Some(&sealed(5, None)), at(T0));
    let same_ms = SealedToken {
        ciphertext: Ciphertext(vec![9]),
        ..sealed(5, None)
    };
    let replaced = Grant::authorized(Some(&first), &profile("u"), &openid, Some(&same_ms), at(T0 + 1));
    assert!(
        replaced.holds(&Ciphertext(vec![9])),
        "issued the same millisecond: the later call wins"
    );
    let undated_store = Grant {
        refresh_token: Some(SealedToken {
            issued_ms: None,
            ..sealed(1, None)
        }),
        ..first.clone()
    };
    let after = Grant::authorized(
        Some(&undated_store),
        &profile("u"),
        &openid,
        Some(&sealed(2, None)),
        at(T0 + 1),
    );
    assert!(after.holds(&Ciphertext(vec![2])));
}

#[test]
fn the_last_use_of_an_older_grant_is_its_last_write() {
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let grant = Grant::authorized(None, &profile("u"), &openid, Some(&sealed(1, None)), at(T0));
    let older = Grant {
        last_used_at: None,
        ..grant.clone()
    };
    assert_eq!(older.last_used(), Some(T0));
    assert_eq!(grant.used(at(T0 + DAY)).unwrap().last_used(), Some(T0 + DAY));
    assert_eq!(rfc3339(at(T0).replace_nanosecond(5).unwrap()), "2030-03-17T17:46:40Z");
    assert_eq!(unix_rfc3339(T0).as_deref(), Some("2030-03-17T17:46:40Z"));
}

#[test]
fn a_ciphertext_shows_only_its_length() {
    assert_eq!(format!("{:?}", Ciphertext(vec![7; 12])), "Ciphertext(12 bytes)");
}

#[test]
fn a_grant_without_a_refresh_token_can_still_be_marked_dead_once() {
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let online = Grant::authorized(None, &profile("u"), &openid, None, at(T0));
    let dead = online.dead("risc:account-disabled", at(T0 + 1)).unwrap();
    assert_eq!(dead.status, GrantStatus::ReauthorizationRequired);
    assert!(dead.dead("risc:account-disabled", at(T0 + 2)).is_none());
}

#[test]
fn users_are_spread_over_the_shards_of_a_day() {
    let policy = SweepPolicy::default();
    let openid: ScopeSet = ["openid"].into_iter().collect();
    let shard = |name: &str| {
        let grant = Grant::authorized(None, &profile(name), &openid, Some(&sealed(1, None)), at(T0));
        grant
            .sweep_slot(&policy, T0)
            .unwrap()
            .bucket
            .split('#')
            .nth(1)
            .unwrap()
            .to_owned()
    };
    // SHA-256 of the sub, first byte, modulo the shard count.
    assert_eq!([shard("u"), shard("user-1"), shard("user-2")], ["3", "6", "1"]);
}
