//! Browser-based uploads (POST Object): the form carries a base64 policy
//! document and a signature over exactly that base64 text, SigV4
//! ("Browser-Based Uploads Using POST (AWS Signature Version 4)",
//! `x-amz-algorithm`/`x-amz-credential`/`x-amz-date`/`x-amz-signature`) or
//! SigV2 (`AWSAccessKeyId`/`signature`, HMAC-SHA1). Only the signature is
//! checked here; the policy's expiry and conditions are the caller's.

use super::signing::{self, ALGORITHM};
use super::{Error, SecretStore, sigv2, sigv4};

/// The fields of a POST form, names lowercased.
pub trait FormFields {
    fn field(&self, name: &str) -> Option<&str>;
}

/// Checks the policy's signature; returns the signer's access key.
pub fn authenticate_post(
    form: &dyn FormFields,
    policy_b64: &str,
    store: &dyn SecretStore,
    region: &str,
) -> Result<String, Error> {
    if let Some(algorithm) = form.field("x-amz-algorithm") {
        if algorithm != ALGORITHM {
            return Err(Error::InvalidArgument(format!(
                "Unsupported x-amz-algorithm '{algorithm}'; only {ALGORITHM} is supported"
            )));
        }
        let missing = |name: &str| Error::InvalidArgument(format!("Bucket POST must contain a field named '{name}'."));
        let credential = form.field("x-amz-credential").ok_or_else(|| missing("x-amz-credential"))?;
        let provided = form.field("x-amz-signature").ok_or_else(|| missing("x-amz-signature"))?;
        form.field("x-amz-date").ok_or_else(|| missing("x-amz-date"))?;
        let credential = sigv4::parse_credential(credential, region).map_err(|reason| {
            Error::InvalidArgument(format!("Error parsing the X-Amz-Credential parameter; {reason}"))
        })?;
        let secret = store
            .secret_key(&credential.access_key)
            .ok_or_else(|| Error::InvalidAccessKeyId { access_key: credential.access_key.clone() })?;
        let key = signing::signing_key(&secret, &credential.date, region);
        if !signing::signature_matches(&key, policy_b64, provided) {
            return Err(Error::signature_mismatch(&credential.access_key, policy_b64.to_owned(), None, provided));
        }
        return Ok(credential.access_key);
    }
    let Some(access_key) = form.field("awsaccesskeyid") else {
        return Err(Error::AccessDenied("Anonymous POST uploads are not allowed on this bucket".into()));
    };
    let provided = form
        .field("signature")
        .ok_or_else(|| Error::InvalidArgument("Bucket POST must contain a field named 'signature'.".into()))?;
    let secret =
        store.secret_key(access_key).ok_or_else(|| Error::InvalidAccessKeyId { access_key: access_key.to_owned() })?;
    sigv2::verify_any(access_key, &secret, vec![policy_b64.to_owned()], provided)?;
    Ok(access_key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testutil::MapStore;

    struct Fields(Vec<(&'static str, String)>);
    impl FormFields for Fields {
        fn field(&self, name: &str) -> Option<&str> {
            self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
        }
    }

    /// The policy and signature of AWS's SigV4 POST example ("Example: Browser-Based Upload
    /// using HTTP POST (Using AWS Signature Version 4)").
    const POLICY: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
    const SIGNATURE: &str = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";

    fn v4(signature: &str) -> Fields {
        Fields(vec![
            ("x-amz-algorithm", ALGORITHM.into()),
            ("x-amz-credential", "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request".into()),
            ("x-amz-date", "20151229T000000Z".into()),
            ("x-amz-signature", signature.into()),
        ])
    }

    #[test]
    fn aws_sigv4_post_example_verifies() {
        let store = MapStore::with(&[]);
        assert_eq!(authenticate_post(&v4(SIGNATURE), POLICY, &store, "us-east-1").unwrap(), "AKIAIOSFODNN7EXAMPLE");
        let bad = SIGNATURE.replace('8', "9");
        let e = authenticate_post(&v4(&bad), POLICY, &store, "us-east-1").unwrap_err();
        assert_eq!(e.code(), "SignatureDoesNotMatch");
        let e = authenticate_post(&v4(SIGNATURE), POLICY, &store, "eu-west-1").unwrap_err();
        assert_eq!(e.code(), "InvalidArgument");
    }

    #[test]
    fn sigv2_and_anonymous() {
        let store = MapStore::with(&[]);
        let anonymous = Fields(vec![]);
        assert_eq!(authenticate_post(&anonymous, "e30=", &store, "us-east-1").unwrap_err().code(), "AccessDenied");
        let unknown = Fields(vec![("awsaccesskeyid", "NOPE".into()), ("signature", "x".into())]);
        assert_eq!(authenticate_post(&unknown, "e30=", &store, "us-east-1").unwrap_err().code(), "InvalidAccessKeyId");
    }
}
