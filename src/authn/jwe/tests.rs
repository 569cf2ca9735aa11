//! The JWE layer alone: the Concat KDF against RFC 7518 Appendix C, and the header
//! refusals that need no ciphertext. Whole JWEs, built by the independent npm `jose`
//! for every algorithm, are decrypted through the gRPC server in `tests/jwe.rs`.

use super::*;

#[test]
fn concat_kdf_matches_rfc_7518_appendix_c() {
    let z = [
        158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110,
        163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
    ];
    let key = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 16);
    assert_eq!(URL_SAFE_NO_PAD.encode(key), "VqqN6vgjbSBcIijNcacQGg");
}

#[test]
fn names_round_trip_and_others_are_refused() {
    for n in [
        "RSA-OAEP-256",
        "ECDH-ES",
        "ECDH-ES+A128KW",
        "ECDH-ES+A256KW",
    ] {
        assert_eq!(KeyAlg::parse(n).map(KeyAlg::as_str), Some(n));
    }
    for n in [
        "dir",
        "RSA1_5",
        "RSA-OAEP",
        "A128KW",
        "A256KW",
        "ECDH-ES+A192KW",
        "A128GCMKW",
        "PBES2-HS256+A128KW",
        "rsa-oaep-256",
    ] {
        assert_eq!(KeyAlg::parse(n), None, "{n}");
    }
    for n in ["A128GCM", "A256GCM"] {
        assert_eq!(Enc::parse(n).map(Enc::as_str), Some(n));
    }
    for n in ["A192GCM", "A128CBC-HS256", "A256CBC-HS512", "a128gcm"] {
        assert_eq!(Enc::parse(n), None, "{n}");
    }
}

fn compact(header: &Value, ek: &[u8]) -> String {
    let e = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}.{}.{}",
        e(header.to_string().as_bytes()),
        e(ek),
        e(&[0; 12]),
        e(b"ciphertext"),
        e(&[0; 16])
    )
}

#[test]
fn shapes_and_headers_ward_does_not_accept_are_undecryptable() {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
        aws_lc_rs::encoding::AsDer::as_der(&pair).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let key = DecryptionKey::from_pem("k", KeyAlg::RsaOaep256, pem.as_bytes()).unwrap();
    assert_eq!(
        format!("{key:?}"),
        r#"DecryptionKey { kid: "k", alg: RsaOaep256, .. }"#
    );
    let keys = [key];
    let ok = serde_json::json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", "kid": "k"});
    let with = |k: &str, v: Value| {
        let mut h = ok.clone();
        if v.is_null() {
            h.as_object_mut().unwrap().remove(k);
        } else {
            h[k] = v;
        }
        h
    };
    let cases = [
        ("no cty", with("cty", Value::Null)),
        ("cty JSON", with("cty", "JSON".into())),
        ("alg dir", with("alg", "dir".into())),
        ("alg RSA1_5", with("alg", "RSA1_5".into())),
        ("alg A128KW", with("alg", "A128KW".into())),
        ("enc CBC", with("enc", "A128CBC-HS256".into())),
        ("zip", with("zip", "DEF".into())),
        ("crit", with("crit", serde_json::json!(["exp"]))),
        ("unknown kid", with("kid", "other".into())),
        ("numeric kid", with("kid", 1.into())),
        ("the right header, a random ciphertext", ok.clone()),
    ];
    for (what, header) in cases {
        assert_eq!(
            decrypt(&compact(&header, &[7; 256]), &keys),
            Err(Undecryptable),
            "{what}"
        );
    }
    for bad in ["a.b.c.d", "a.b.c.d.e.f", "", "....", "!!.a.b.c.d"] {
        assert!(decrypt(bad, &keys).is_err(), "{bad}");
    }
    assert!(is_jwe("a.b.c.d.e") && !is_jwe("a.b.c") && !is_jwe("a.b.c.d.e.f"));
}

#[test]
fn key_files_of_the_wrong_kind_are_refused_by_name() {
    let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(ec.to_pkcs8v1().unwrap().as_ref())
    );
    assert_eq!(
        DecryptionKey::from_pem("k", KeyAlg::RsaOaep256, pem.as_bytes()).unwrap_err(),
        KeyError::NotRsa("RSA-OAEP-256")
    );
    let k = DecryptionKey::from_pem("k", KeyAlg::EcdhEs, pem.as_bytes()).unwrap();
    assert_eq!(k.curve(), Some(Curve::P256));
    assert_eq!(
        DecryptionKey::from_pem("k", KeyAlg::EcdhEs, b"not a key").unwrap_err(),
        KeyError::NoPrivateKey
    );
}

#[test]
fn an_ephemeral_key_off_the_curve_or_of_another_curve_derives_nothing() {
    use aws_lc_rs::agreement::{PrivateKey, UnparsedPublicKey as Peer};
    let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(ec.to_pkcs8v1().unwrap().as_ref())
    );
    let key = DecryptionKey::from_pem("k", KeyAlg::EcdhEs, pem.as_bytes()).unwrap();
    let peer = PrivateKey::generate(&ECDH_P256).unwrap();
    let point = peer.compute_public_key().unwrap();
    let point = point.as_ref();
    let coords = |p: &[u8]| {
        (
            URL_SAFE_NO_PAD.encode(&p[1..33]),
            URL_SAFE_NO_PAD.encode(&p[33..65]),
        )
    };
    let header = |x: &str, y: &str, crv: &str| {
        serde_json::json!({"alg": "ECDH-ES", "enc": "A128GCM", "epk": {"kty": "EC", "crv": crv, "x": x, "y": y}})
            .as_object()
            .unwrap()
            .clone()
    };
    let (x, y) = coords(point);
    // On the curve: a key is derived, and it is the one the peer derives.
    let cek = content_key(
        &key,
        KeyAlg::EcdhEs,
        Enc::A128Gcm,
        &header(&x, &y, "P-256"),
        &[],
    )
    .unwrap();
    let ours = DecryptionKey::from_pem("k", KeyAlg::EcdhEs, pem.as_bytes()).unwrap();
    let Private::Ec(_, ours) = &ours.key else {
        unreachable!()
    };
    let public = ours.compute_public_key().unwrap();
    let theirs = agreement::agree(&peer, Peer::new(&ECDH_P256, public.as_ref()), (), |z| {
        Ok(concat_kdf(z, "A128GCM", b"", b"", 16))
    })
    .unwrap();
    assert_eq!(cek, theirs);
    // y + 1: off the curve.
    let mut off = point.to_vec();
    off[64] ^= 0x01;
    let (ox, oy) = coords(&off);
    assert!(
        content_key(
            &key,
            KeyAlg::EcdhEs,
            Enc::A128Gcm,
            &header(&ox, &oy, "P-256"),
            &[]
        )
        .is_err()
    );
    // The point at infinity's encoding, all zeros, is no point either.
    let zeros = URL_SAFE_NO_PAD.encode([0u8; 32]);
    assert!(
        content_key(
            &key,
            KeyAlg::EcdhEs,
            Enc::A128Gcm,
            &header(&zeros, &zeros, "P-256"),
            &[]
        )
        .is_err()
    );
    // Another curve's name, or a coordinate of another length.
    assert!(
        content_key(
            &key,
            KeyAlg::EcdhEs,
            Enc::A128Gcm,
            &header(&x, &y, "P-384"),
            &[]
        )
        .is_err()
    );
    let short = URL_SAFE_NO_PAD.encode([1u8; 31]);
    assert!(
        content_key(
            &key,
            KeyAlg::EcdhEs,
            Enc::A128Gcm,
            &header(&short, &y, "P-256"),
            &[]
        )
        .is_err()
    );
    // ECDH-ES direct takes no encrypted key.
    assert!(
        content_key(
            &key,
            KeyAlg::EcdhEs,
            Enc::A128Gcm,
            &header(&x, &y, "P-256"),
            &[0; 24]
        )
        .is_err()
    );
}
