//! The JWS signature algorithms ward accepts (RFC 7518 §3, RFC 8037 for `EdDSA`, RFC 9864
//! for `Ed25519`, the fully-specified name of EdDSA on the Ed25519 curve).

/// Signature algorithms ward accepts. `none` is not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    /// ECDSA on P-521 with SHA-512.
    ES512,
    /// EdDSA on whatever OKP curve the key names; ward holds only Ed25519 keys.
    EdDSA,
    /// RFC 9864: EdDSA on Ed25519, named fully. Verified exactly as `EdDSA` with an
    /// Ed25519 key.
    Ed25519,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    /// The default allow-list: every asymmetric algorithm. HMAC must be asked for.
    pub const ASYMMETRIC: [Alg; 11] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::EdDSA,
        Alg::Ed25519,
    ];

    /// Every algorithm, in the order error messages list them.
    pub const ALL: [Alg; 14] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::EdDSA,
        Alg::Ed25519,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    pub fn parse(s: &str) -> Option<Alg> {
        Some(match s {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            "EdDSA" => Alg::EdDSA,
            "Ed25519" => Alg::Ed25519,
            "HS256" => Alg::HS256,
            "HS384" => Alg::HS384,
            "HS512" => Alg::HS512,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
            Alg::Ed25519 => "Ed25519",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// Whether `self` and `other` name the same signature scheme: equal, or `EdDSA` and
    /// `Ed25519` (the same scheme on the only OKP curve ward holds keys for). A key
    /// published with `alg: EdDSA` thus verifies a token signed as `Ed25519`, and back.
    pub fn same_scheme(self, other: Alg) -> bool {
        self == other || (self.is_ed25519() && other.is_ed25519())
    }

    /// `EdDSA` or `Ed25519`.
    pub fn is_ed25519(self) -> bool {
        matches!(self, Alg::EdDSA | Alg::Ed25519)
    }

    /// The jsonwebtoken algorithm that makes this signature, for signing with it.
    /// jsonwebtoken has no ES512 (`None`); `Ed25519` signs as its `EdDSA`.
    pub fn to_jsonwebtoken(self) -> Option<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm as A;
        Some(match self {
            Alg::RS256 => A::RS256,
            Alg::RS384 => A::RS384,
            Alg::RS512 => A::RS512,
            Alg::PS256 => A::PS256,
            Alg::PS384 => A::PS384,
            Alg::PS512 => A::PS512,
            Alg::ES256 => A::ES256,
            Alg::ES384 => A::ES384,
            Alg::EdDSA | Alg::Ed25519 => A::EdDSA,
            Alg::HS256 => A::HS256,
            Alg::HS384 => A::HS384,
            Alg::HS512 => A::HS512,
            Alg::ES512 => return None,
        })
    }

    /// The list of names, for error messages.
    pub fn names() -> String {
        Alg::ALL.map(Alg::as_str).join(", ")
    }
}
