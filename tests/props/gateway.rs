//! The sans-IO gateway under random scripts of client and backend events, catalogs and
//! reloads (the fuzz target's format, see `check/gateway.rs`): no panic, no request answered
//! twice, only valid exposed names, nothing left tracked or unanswered at the end.

use super::check::gateway::run;
use proptest::collection::vec;
use proptest::prelude::*;

/// One event line: a tag (weighted towards requests and the answers that take them deep)
/// and a few selector characters, or a real line captured from the SDK client or
/// server-everything, sent raw by the client or by a backend.
fn op() -> impl Strategy<Value = Vec<u8>> {
    let tag = prop::sample::select(b"rrrrrrrrraaaaaaaaaaqkmmnbxxzfwwwwwetsouuulhhvvvV".to_vec());
    let arg = prop::sample::select(b"0123456789abcdefghijklmnopqrst".to_vec());
    let real = prop::sample::select(vec![
        &br#"c{"jsonrpc":"2.0","method":"notifications/initialized"}"#[..],
        br#"c{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"alpha__get-roots-list","arguments":{}}}"#,
        br#"c{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"alpha__completable-prompt"},"argument":{"name":"department","value":"E"}}}"#,
        br#"c{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"caller cancelled"}}"#,
        br#"b0{"method":"notifications/progress","params":{"progress":1,"total":4,"progressToken":2},"jsonrpc":"2.0"}"#,
        br#"b2{"method":"roots/list","jsonrpc":"2.0","id":0}"#,
        br#"b1{"method":"notifications/message","params":{"level":"debug","data":"Debug-level message"},"jsonrpc":"2.0"}"#,
        br#"b0{"result":{},"jsonrpc":"2.0","id":3}"#,
    ]);
    prop_oneof![
        12 => (tag, vec(arg, 0..6)).prop_map(|(t, args)| {
            let mut line = vec![t];
            line.extend(args);
            line
        }),
        1 => real.prop_map(<[u8]>::to_vec),
    ]
}

fn script() -> impl Strategy<Value = Vec<u8>> {
    let header = (
        prop::sample::select(b"mtb".to_vec()),
        prop::sample::select(b"01".to_vec()),
        prop::sample::select(b"012345".to_vec()),
    );
    (header, vec(op(), 0..80)).prop_map(|((expose, idle, settings), ops)| {
        let mut s = vec![expose, idle, settings];
        for op in ops {
            s.push(b'\n');
            s.extend(op);
        }
        s
    })
}

proptest! {
    #![proptest_config(super::runner(192))]

    #[test]
    fn scripts_never_answer_twice_and_leave_nothing_behind(script in script()) {
        run(&script);
    }
}
