//! Access control is stored with the bucket and the object: bucket and
//! object ACLs, the policy, Object Ownership, Public Access Block and CORS
//! rules survive
//! a clean restart and kill -9 (and a checkpoint in between), and decide
//! anonymous requests afterwards exactly as before (Rust SDK and raw HTTP).

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CorsConfiguration, CorsRule, ObjectCannedAcl, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration,
};
use common::*;

/// A browser's preflight for a PUT from `origin`.
fn preflight(node: &Node, path: &str, origin: &str) -> RawResponse {
    let req = format!(
        "OPTIONS {path} HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n"
    );
    raw(node.addr, req.as_bytes()).unwrap()
}

fn anon_get(node: &Node, path: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    raw(node.addr, req.as_bytes()).unwrap()
}

#[test]
fn access_settings_survive_restart_and_kill9() {
    let mut node = Node::start("access-durable", &["--checkpoint-interval-ms", "200"]);
    let rt = rt();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::durable/policy/*"}]}"#;
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("durable").send().await.unwrap();
        let put = |k: &str| c.put_object().bucket("durable").key(k).body(ByteStream::from(k.as_bytes().to_vec()));
        put("acl/public").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
        put("acl/private").send().await.unwrap();
        put("policy/a").send().await.unwrap();
        c.put_bucket_policy().bucket("durable").policy(policy).send().await.unwrap();
        let rule =
            OwnershipControlsRule::builder().object_ownership(ObjectOwnership::BucketOwnerPreferred).build().unwrap();
        let controls = OwnershipControls::builder().rules(rule).build().unwrap();
        c.put_bucket_ownership_controls().bucket("durable").ownership_controls(controls).send().await.unwrap();
        let pab = PublicAccessBlockConfiguration::builder().block_public_acls(true).build();
        c.put_public_access_block().bucket("durable").public_access_block_configuration(pab).send().await.unwrap();
        let rule = CorsRule::builder().allowed_origins("http://app").allowed_methods("PUT").build().unwrap();
        let cors = CorsConfiguration::builder().cors_rules(rule).build().unwrap();
        c.put_bucket_cors().bucket("durable").cors_configuration(cors).send().await.unwrap();
    });
    let check = |node: &Node, when: &str| {
        assert_eq!(anon_get(node, "/durable/acl/public").status, 200, "{when}: public-read object");
        assert_eq!(anon_get(node, "/durable/policy/a").status, 200, "{when}: object the policy opens");
        let r = anon_get(node, "/durable/acl/private");
        assert_eq!((r.status, r.code().as_str()), (403, "AccessDenied"), "{when}: private object");
        let r = preflight(node, "/durable/k", "http://app");
        assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("http://app")), "{when}: CORS");
        assert_eq!(preflight(node, "/durable/k", "http://other").status, 403, "{when}: CORS, other origin");
        let c = sdk(&node.endpoint());
        rt.block_on(async {
            let got = c.get_bucket_policy().bucket("durable").send().await.unwrap();
            assert_eq!(got.policy(), Some(policy), "{when}: policy");
            let acl = c.get_object_acl().bucket("durable").key("acl/public").send().await.unwrap();
            assert_eq!(acl.grants().len(), 2, "{when}: object ACL");
            let o = c.get_bucket_ownership_controls().bucket("durable").send().await.unwrap();
            let rules = o.ownership_controls().unwrap().rules();
            assert_eq!(rules[0].object_ownership(), &ObjectOwnership::BucketOwnerPreferred, "{when}: ownership");
            let pab = c.get_public_access_block().bucket("durable").send().await.unwrap();
            let pab = pab.public_access_block_configuration().unwrap();
            assert_eq!((pab.block_public_acls(), pab.ignore_public_acls()), (Some(true), Some(false)), "{when}");
            // BlockPublicAcls still refuses a public ACL.
            let e = c
                .put_object_acl()
                .bucket("durable")
                .key("acl/private")
                .acl(ObjectCannedAcl::PublicRead)
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.code(), Some("AccessDenied"), "{when}: BlockPublicAcls");
        });
    };
    check(&node, "before");
    node.restart();
    check(&node, "after a clean restart");
    // Change the object ACL, then kill -9: the change was acknowledged, so it is durable.
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.delete_public_access_block().bucket("durable").send().await.unwrap();
        c.put_object_acl().bucket("durable").key("acl/private").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
        let pab = PublicAccessBlockConfiguration::builder().block_public_acls(true).build();
        c.put_public_access_block().bucket("durable").public_access_block_configuration(pab).send().await.unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    node.crash_and_restart();
    assert_eq!(anon_get(&node, "/durable/acl/private").status, 200, "ACL set before kill -9");
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.put_object_acl().bucket("durable").key("acl/private").acl(ObjectCannedAcl::Private).send().await.unwrap();
    });
    node.crash_and_restart();
    check(&node, "after kill -9");
}
