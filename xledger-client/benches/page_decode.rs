//! What one full page costs on the client side: a 10 000-node timesheets page (Xledger's maximum),
//! gzipped, served from 127.0.0.1, fetched and decoded by `items_pages` (HTTP, gunzip, error
//! classification, one pass over the page). Prints the page's plain and on-the-wire sizes once.

use std::io::Write;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::TryStreamExt;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};
use xledger_client::{ApiKey, ClientConfig, XledgerClient};

const ROWS: usize = 10_000;

fn timesheet(i: usize) -> Value {
    json!({
        "dbId": format!("{}", 900_000_000_000u64 + i as u64),
        "createdAt": "2024-07-11T21:17:09", "modifiedAt": "2024-07-12T08:01:44",
        "assignmentDate": "2024-07-11", "workingHours": format!("{}.50", i % 12),
        "isHeaderApproved": i.is_multiple_of(3), "headerApprovedAt": null, "hourlyRevenueCurrency": "1250.00",
        "owner": {"dbId": 17, "description": "Acme AS"},
        "employee": {"dbId": 1000 + i % 250, "description": format!("Employee {}", i % 250), "code": format!("E{}", i % 250)},
        "activity": {"code": "DEV", "description": "Development"},
        "timeType": {"code": "NORM", "description": "Normal hours"},
        "project": {"dbId": 5000 + i % 40, "description": format!("Project {}", i % 40), "code": format!("P{}", i % 40)}
    })
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let edges: Vec<Value> = (0..ROWS).map(|i| json!({"cursor": format!("{i}"), "node": timesheet(i)})).collect();
    let plain =
        serde_json::to_vec(&json!({"data": {"timesheets": {"edges": edges, "pageInfo": {"hasNextPage": false}}}}))
            .expect("serialize the page");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&plain).expect("write to a Vec");
    let gzipped = encoder.finish().expect("finish a Vec");

    let server = runtime.block_on(MockServer::start());
    runtime.block_on(
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(gzipped.clone(), "application/json")
                    .insert_header("content-encoding", "gzip"),
            )
            .mount(&server),
    );
    let endpoint = format!("{}/graphql", server.uri()).parse().expect("a URL");
    let client =
        XledgerClient::new(ClientConfig::new(endpoint, ApiKey::new("bench-key".to_string()))).expect("a client");
    let timesheets = xledger_model::entity("timesheets").expect("built-in entity");
    eprintln!("page of {ROWS} timesheets: {} bytes JSON, {} bytes gzipped", plain.len(), gzipped.len());

    c.bench_function("items_pages: one gzipped 10 000-node timesheets page over loopback", |b| {
        b.iter(|| {
            let pages: Vec<_> = runtime
                .block_on(client.items_pages(timesheets, ROWS, None).try_collect::<Vec<_>>())
                .expect("the page decodes");
            assert_eq!(pages[0].len(), ROWS);
        })
    });
    let stats = client.stats();
    eprintln!("client stats: {} requests, {} bytes received", stats.requests, stats.bytes_received);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
