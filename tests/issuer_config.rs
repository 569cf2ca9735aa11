//! Config errors of `signing`, `mint` and `exchange`: each names its path and line and
//! says what to do; a key file must hold a private key of its algorithm.

mod common;
mod issuer_setup;

use common::{KeyRing, TestKey, Ward, WardBuilder};
use issuer_setup::{builder, config, signing_key};
use ward::authn::jwt::Alg;

/// `config()` with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> WardBuilder {
    let c = config("");
    assert!(c.contains(from), "the test config has no `{from}`");
    Ward::builder(&c.replacen(from, to, 1)).file("signing/current.pem", signing_key().key_file())
}

fn assert_error(b: &WardBuilder, line_and_path: &str, message: &str) {
    let e = b.config_error();
    assert!(
        e.lines()
            .any(|l| l.contains(line_and_path) && l.contains(message)),
        "expected `{line_and_path}` … `{message}` in:\n{e}"
    );
}

#[test]
fn the_test_config_loads() {
    builder("").load().expect("loads");
}

#[test]
fn mint_and_exchange_need_signing() {
    let c = config("");
    let start = c.find("signing:").expect("signing");
    let end = c.find("providers:").expect("providers");
    let without = format!("{}{}", &c[..start], &c[end..]);
    let e = Ward::builder(&without).config_error();
    for path in [
        "routes[0].mint: `mint` needs `signing`",
        "routes[1].mint:",
        "exchange: `exchange` needs `signing`",
    ] {
        assert!(e.contains(path), "no `{path}` in:\n{e}");
    }
    assert!(
        e.lines().all(|l| l.starts_with("line ")),
        "every error has its line:\n{e}"
    );
}

#[test]
fn key_files_are_checked_for_their_algorithm() {
    // No such file.
    let missing = edited(
        "key_file: signing/current.pem",
        "key_file: signing/gone.pem",
    );
    assert_error(&missing, "signing.keys[0].key_file", "cannot read");
    // An EdDSA key for ES256; a public key; an unknown algorithm.
    let ed = TestKey::generate(Alg::EdDSA);
    let wrong = builder("").file("signing/current.pem", ed.key_file());
    assert_error(
        &wrong,
        "signing.keys[0].key_file",
        "ES256 needs a P-256 EC private key",
    );
    let public = builder("").file(
        "signing/current.pem",
        KeyRing::shared().rs256.rsa_public_pem(),
    );
    assert_error(&public, "signing.keys[0].key_file", "no PEM private key");
    let hs = edited("alg: ES256", "alg: HS256");
    assert_error(
        &hs,
        "signing.keys[0].alg",
        "`HS256` is not one of ES256, EdDSA, RS256, PS256",
    );
}

#[test]
fn signing_itself_is_checked() {
    let dup = edited(
        "    - { kid: \"2026-12\", alg: ES256, key_file: signing/current.pem }",
        "    - { kid: \"2026-12\", alg: ES256, key_file: signing/current.pem }\n    - { kid: \"2026-12\", alg: ES256, key_file: signing/current.pem }",
    );
    assert_error(
        &dup,
        "signing.keys[1].kid",
        "kid `2026-12` is already used by signing.keys[0]",
    );
    let issuer = edited("issuer: https://ward.internal", "issuer: ward.internal");
    assert_error(&issuer, "signing.issuer", "is not an http(s) URL");
    let none = edited(
        "    - { kid: \"2026-12\", alg: ES256, key_file: signing/current.pem }",
        "    []",
    );
    let e = none.config_error();
    assert!(e.contains("signing.keys"), "{e}");
}

#[test]
fn mint_settings_are_checked() {
    let reserved = edited("claims: [sub, roles, tenant]", "claims: [sub, exp, tenant]");
    assert_error(
        &reserved,
        "routes[0].mint.claims[1]",
        "`exp` is set by ward on every token",
    );
    let long = edited("ttl: 60s\n      header", "ttl: 48h\n      header");
    assert_error(&long, "routes[0].mint.ttl", "whole seconds from 1s to 24h");
    let authz = edited(
        "header: x-auth-token\n      claims",
        "header: authorization\n      claims",
    );
    assert_error(
        &authz,
        "routes[0].mint.header",
        "`authorization` cannot carry a minted token",
    );
    let identity = edited(
        "header: x-auth-token\n      claims",
        "header: x-auth-subject\n      claims",
    );
    assert_error(
        &identity,
        "routes[0].mint.header",
        "already carries an identity header",
    );
    let typo = edited(
        "audience: payments-api\n      ttl",
        "audiense: payments-api\n      ttl",
    );
    assert_error(&typo, "routes[0].mint", "unknown field `audiense`");
}

#[test]
fn a_provider_may_not_read_its_credential_from_a_mint_header() {
    let b = edited(
        "      claims: {{ roles: roles }}"
            .replace("{{", "{")
            .replace("}}", "}")
            .as_str(),
        "      claims: { roles: roles }\n      token_from: [ { header: x-auth-token } ]",
    );
    assert_error(
        &b,
        "routes[0].mint.header",
        "provider `corp` (providers[0]) reads its credential from `x-auth-token`",
    );
}

#[test]
fn exchanges_are_checked() {
    let unknown = edited(
        "    providers: [corp]\n    require: { roles_any: [checkout] }",
        "    providers: [corp, partner]\n    require: { roles_any: [checkout] }",
    );
    assert_error(
        &unknown,
        "exchange[0].providers[1]",
        "no provider is named `partner`",
    );
    let second = "  - name: payments2\n    audience: payments-exchange\n    providers: [corp]\n    ttl: 5m\n";
    let dup = Ward::builder(&format!("{}{second}", config("")))
        .file("signing/current.pem", signing_key().key_file());
    assert_error(
        &dup,
        "exchange[1].audience",
        "exchange[0] already answers for audience `payments-exchange`",
    );
    let condition = edited(
        "require: { roles_any: [checkout] }",
        "require: { role_any: [checkout] }",
    );
    assert_error(&condition, "exchange[0].require", "role_any");
}
