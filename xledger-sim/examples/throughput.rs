//! Measures how fast the simulator streams the timesheets items pages over loopback.
//!
//! ```text
//! cargo run --release -p xledger-sim --example throughput -- [rows] [page]
//! ```
//! Defaults: 1 000 000 timesheet rows, pages of 10 000, the registry's `TimesheetsPage`
//! document. The client is a minimal keep-alive HTTP/1.1 loop that only finds the last cursor,
//! so the number is the simulator's, not a JSON parser's.

use std::collections::BTreeMap;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use xledger_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let page: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let started = Instant::now();
    let config = SimConfig {
        rows: 0,
        rows_per_entity: BTreeMap::from([("timesheets".to_owned(), rows)]),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await?;
    println!("generated {rows} timesheet rows in {:.2?}", started.elapsed());

    let document = xledger_model::entity("timesheets").ok_or("no timesheets entity")?.items_page.document;
    let mut stream = BufReader::new(TcpStream::connect(sim.local_addr()).await?);
    let (mut after, mut total_rows, mut total_bytes, mut pages) = (serde_json::Value::Null, 0usize, 0usize, 0usize);
    let started = Instant::now();
    loop {
        let body = serde_json::json!({ "query": document, "variables": { "first": page, "after": after } }).to_string();
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: sim\r\nAuthorization: token {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            sim.api_key(),
            body.len()
        );
        stream.get_mut().write_all(head.as_bytes()).await?;
        stream.get_mut().write_all(body.as_bytes()).await?;
        let response = read_response(&mut stream).await?;
        pages += 1;
        total_bytes += response.len();
        let text = std::str::from_utf8(&response)?;
        total_rows += text.matches("\"cursor\":\"").count();
        let Some(at) = text.rfind("\"cursor\":\"") else { break };
        let cursor_start = at + "\"cursor\":\"".len();
        let cursor_end = cursor_start + text[cursor_start..].find('"').ok_or("unterminated cursor")?;
        after = serde_json::Value::from(&text[cursor_start..cursor_end]);
        if !text.ends_with("\"hasNextPage\":true}}}}") {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{total_rows} rows, {pages} pages, {:.1} MB in {seconds:.2} s: {:.0} MB/s, {:.0} rows/s",
        total_bytes as f64 / 1e6,
        total_bytes as f64 / 1e6 / seconds,
        total_rows as f64 / seconds
    );
    sim.shutdown().await;
    Ok(())
}

/// Reads one `Content-Length` HTTP/1.1 response and returns its body.
async fn read_response(stream: &mut BufReader<TcpStream>) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use tokio::io::AsyncBufReadExt;
    let mut length = None;
    let mut line = String::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse::<usize>()?);
        }
    }
    let mut body = vec![0; length.ok_or("no content-length")?];
    stream.read_exact(&mut body).await?;
    Ok(body)
}
