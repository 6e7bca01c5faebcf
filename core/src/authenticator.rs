//! Checks the token a client presents at connect: a JSON Web Token signed
//! with HS256 (a shared secret) or ES256/RS256 (the issuer's public key).
//!
//! The claims wtchat reads:
//!
//! | claim | required | meaning |
//! |-------|----------|---------|
//! | `sub` | yes | The user. |
//! | `exp` | yes | Expiry (seconds since the Unix epoch); the session is closed when it passes. |
//! | `name` | no | The display name others see; defaults to `sub`. |
//! | `rooms` | no | Room patterns the user may join (`["lobby", "team-*"]`); absent means every room. |
//! | `publish` | no | Room patterns the user may publish to; absent means the same as `rooms`. |
//! | `iss`, `aud` | if configured | Checked against `auth_issuer` and `auth_audience`. |

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::room_pattern::{RoomGrant, RoomPattern};
use crate::user::User;

/// Clock difference tolerated between the token's issuer and this server.
const LEEWAY: Duration = Duration::from_secs(30);

/// Verifies tokens with one key.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("Authenticator").field("algorithms", &self.validation.algorithms).finish()
    }
}

/// Where the verification key comes from.
#[derive(Debug, Clone)]
pub enum AuthKey<'a> {
    /// A shared HS256 secret.
    Secret(&'a str),
    /// A PEM public key file: ES256 for a P-256 key, RS256 for an RSA key.
    PublicKeyFile(&'a Path),
}

/// The claims wtchat reads; others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    name: Option<String>,
    rooms: Option<Vec<RoomPattern>>,
    publish: Option<Vec<RoomPattern>>,
}

impl Authenticator {
    /// An authenticator for `key`, checking `iss` and `aud` when given.
    pub fn new(key: AuthKey<'_>, issuer: Option<&str>, audience: Option<&str>) -> Result<Self, String> {
        let (key, algorithm) = match key {
            AuthKey::Secret(secret) => {
                if secret.len() < 32 {
                    return Err("auth_hs256_secret must be at least 32 bytes long".into());
                }
                (DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256)
            }
            AuthKey::PublicKeyFile(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                match DecodingKey::from_ec_pem(&pem) {
                    Ok(key) => (key, Algorithm::ES256),
                    Err(_) => {
                        DecodingKey::from_rsa_pem(&pem).map(|key| (key, Algorithm::RS256)).map_err(|e| {
                            format!("{} is neither a P-256 nor an RSA public key in PEM: {e}", path.display())
                        })?
                    }
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY.as_secs();
        validation.set_required_spec_claims(&["exp", "sub"]);
        match issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    /// The user a token proves, or why it proves nothing.
    pub fn verify(&self, token: Option<&str>) -> Result<User, String> {
        let token =
            token.filter(|t| !t.is_empty()).ok_or("a token is required; pass ?token= or a bearer token")?;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
                |error| match error.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the token's signature is invalid".to_owned()
                    }
                    _ => format!("the token is not valid: {error}"),
                },
            )?;
        let claims = data.claims;
        let join = claims.rooms.map_or(RoomGrant::Any, RoomGrant::Only);
        let publish = claims.publish.map_or_else(|| join.clone(), RoomGrant::Only);
        Ok(User {
            display_name: Some(claims.name.unwrap_or_else(|| claims.sub.clone())),
            id: claims.sub,
            join,
            publish,
            expires_at: Some(UNIX_EPOCH + Duration::from_secs(claims.exp) + LEEWAY),
        })
    }
}

/// Seconds from now until `at`, or zero if it has passed.
pub fn remaining(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "a shared secret of at least thirty-two bytes";

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    fn hs256(claims: &serde_json::Value, secret: &str) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn a_valid_token_names_the_user_and_grants_its_rooms() {
        let auth = Authenticator::new(AuthKey::Secret(SECRET), None, None).unwrap();
        let token =
            hs256(&json!({"sub": "u1", "name": "Ann", "exp": now() + 60, "rooms": ["team-*"]}), SECRET);
        let user = auth.verify(Some(&token)).unwrap();
        assert_eq!(user.id, "u1");
        assert_eq!(user.display_name.as_deref(), Some("Ann"));
        assert!(user.join.covers("team-a") && !user.join.covers("lobby"));
        assert!(user.publish.covers("team-a") && !user.publish.covers("lobby"), "publish follows rooms");
        let read_only = hs256(&json!({"sub": "u2", "exp": now() + 60, "publish": []}), SECRET);
        let user = auth.verify(Some(&read_only)).unwrap();
        assert_eq!(user.display_name.as_deref(), Some("u2"), "the name defaults to the subject");
        assert!(user.join.covers("lobby") && !user.publish.covers("lobby"));
    }

    #[test]
    fn missing_expired_forged_and_incomplete_tokens_are_refused() {
        let auth = Authenticator::new(AuthKey::Secret(SECRET), None, None).unwrap();
        assert!(auth.verify(None).unwrap_err().contains("required"));
        let expired = hs256(&json!({"sub": "u", "exp": now() - 3600}), SECRET);
        assert!(auth.verify(Some(&expired)).unwrap_err().contains("expired"));
        let forged =
            hs256(&json!({"sub": "u", "exp": now() + 60}), "another secret, also long enough to pass");
        assert!(auth.verify(Some(&forged)).unwrap_err().contains("signature"));
        let no_expiry = hs256(&json!({"sub": "u"}), SECRET);
        assert!(auth.verify(Some(&no_expiry)).is_err());
        assert!(auth.verify(Some("not.a.token")).is_err());
        assert!(Authenticator::new(AuthKey::Secret("short"), None, None).is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let auth =
            Authenticator::new(AuthKey::Secret(SECRET), Some("https://id.example"), Some("chat")).unwrap();
        let good = hs256(
            &json!({"sub": "u", "exp": now() + 60, "iss": "https://id.example", "aud": "chat"}),
            SECRET,
        );
        assert!(auth.verify(Some(&good)).is_ok());
        let stranger =
            hs256(&json!({"sub": "u", "exp": now() + 60, "iss": "https://evil", "aud": "chat"}), SECRET);
        assert!(auth.verify(Some(&stranger)).is_err());
    }

    #[test]
    fn rs256_tokens_verify_with_an_rsa_public_key() {
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let auth = Authenticator::new(AuthKey::PublicKeyFile(&testdata.join("rs256-public.pem")), None, None)
            .unwrap();
        let private = std::fs::read(testdata.join("rs256-private.pem")).unwrap();
        let signing = EncodingKey::from_rsa_pem(&private).unwrap();
        let token = encode(&Header::new(Algorithm::RS256), &json!({"sub": "r", "exp": now() + 60}), &signing)
            .unwrap();
        assert_eq!(auth.verify(Some(&token)).unwrap().id, "r");
        // Change one character inside the signature (not its last, whose
        // low bits are padding that decoders may ignore).
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert!(auth.verify(Some(&tampered)).is_err(), "a changed signature is refused");
    }

    #[test]
    fn es256_tokens_verify_with_the_public_key_and_hs256_ones_do_not() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let dir = std::env::temp_dir().join(format!("wtchat-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let public = dir.join("es256.pem");
        std::fs::write(&public, key.public_key_pem()).unwrap();
        let auth = Authenticator::new(AuthKey::PublicKeyFile(&public), None, None).unwrap();
        let signing = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        let claims = json!({"sub": "u", "exp": now() + 60});
        let token = encode(&Header::new(Algorithm::ES256), &claims, &signing).unwrap();
        assert_eq!(auth.verify(Some(&token)).unwrap().id, "u");
        // An attacker who knows the public key must not sign with it as an
        // HMAC secret (algorithm confusion).
        let confused = hs256(&claims, &key.public_key_pem());
        assert!(auth.verify(Some(&confused)).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
