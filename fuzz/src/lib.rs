//! What ward's fuzz targets share: the example policy and keys, loaded once, and the
//! plain definitions the targets check ward's matchers against.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ward::authn::ProviderKind;
use ward::authn::jwks::KeySet;
use ward::authn::jwt::{Alg, JwtSettings};
use ward::devtoken::SigningKey;
use ward::Config;
use ward::engine::Engine;

/// "Now" for token checks (2027-01-15): the seeds' tokens are valid then.
pub const NOW: u64 = 1_800_000_000;

/// The Keycloak example policy: ES256 keys from a file, hosts, path parameters, context
/// extensions, `source_principals`, claim tests and nested combinators.
pub const POLICY: &str = include_str!("../../examples/policies/keycloak.yaml");

/// Routes of every shape, for path normalisation and route selection.
pub const ROUTES: &str = include_str!("../routes.yaml");

/// ward's source tree.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Loads `text` as a config file in `dir` (relative to the repository), with no
/// environment variables.
pub fn load(text: &str, dir: &str) -> Result<Config, ward::ConfigErrors> {
    let env: HashMap<String, String> = HashMap::new();
    ward::config::load_str(text, &repo().join(dir), &env)
}

/// The example policy, compiled.
pub fn policy() -> Config {
    load(POLICY, "examples/policies").expect("the example policy loads")
}

/// The route shapes of `routes.yaml`, compiled.
pub fn routes() -> &'static Config {
    static ROUTES_CONFIG: OnceLock<Config> = OnceLock::new();
    ROUTES_CONFIG.get_or_init(|| load(ROUTES, "fuzz").expect("routes.yaml loads"))
}

/// The JWT provider of the example policy, its key set and a key that signs for it.
pub struct Issuer {
    pub name: Arc<str>,
    pub settings: JwtSettings,
    pub keys: KeySet,
    pub signer: SigningKey,
    /// The claims the policy's conditions read, sorted, as the engine keeps them.
    pub kept_claims: Vec<Arc<str>>,
}

pub fn issuer() -> &'static Issuer {
    static ISSUER: OnceLock<Issuer> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let config = policy();
        let provider = config.providers().first().expect("a provider");
        let ProviderKind::Jwt(settings) = &provider.kind else {
            panic!("the example policy's provider is a JWT provider");
        };
        let jwks: serde_json::Value = serde_json::from_str(include_str!(
            "../../examples/policies/keys/idp-ec.jwks.json"
        ))
        .expect("JWKS is JSON");
        let (keys, _) = KeySet::from_jwks(&jwks).expect("the example JWKS loads");
        let signer = SigningKey::from_bytes(
            include_bytes!("../../examples/policies/keys/idp-ec.pem"),
            Alg::ES256,
        )
        .expect("the example key loads");
        Issuer {
            name: provider.name.clone(),
            settings: (**settings).clone(),
            keys,
            signer,
            kept_claims: vec!["resource_access".into(), "tenant".into()],
        }
    })
}

/// A current-thread runtime and an engine on the example policy (static keys: no
/// network is ever touched).
pub fn engine() -> &'static (tokio::runtime::Runtime, Engine) {
    static ENGINE: OnceLock<(tokio::runtime::Runtime, Engine)> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let engine = {
            let _in_runtime = rt.enter();
            Engine::new(policy(), Arc::new(ward::metrics::Metrics::new()))
        };
        (rt, engine)
    })
}

/// Splits fuzz input at its first newline: (pattern, input).
pub fn two_lines(data: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(data).ok()?;
    Some(text.split_once('\n').unwrap_or((text, "")))
}

/// The definition of a `source_principals` glob match, by dynamic programming over
/// (pattern position, input position): `*` takes one or more characters other than `/`,
/// everything else is literal. Cubic, so only for small inputs.
pub fn glob_reference(pattern: &str, input: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = input.chars().collect();
    // can[i][j]: p[i..] matches s[j..].
    let mut can = vec![vec![false; s.len() + 1]; p.len() + 1];
    can[p.len()][s.len()] = true;
    for i in (0..p.len()).rev() {
        for j in (0..=s.len()).rev() {
            can[i][j] = if p[i] == '*' {
                (j + 1..=s.len())
                    .take_while(|&k| s[k - 1] != '/')
                    .any(|k| can[i + 1][k])
            } else {
                j < s.len() && s[j] == p[i] && can[i + 1][j + 1]
            };
        }
    }
    can[0][0]
}
