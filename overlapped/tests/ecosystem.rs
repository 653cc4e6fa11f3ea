//! The async layer next to the wider ecosystem: a program that imports the
//! `futures` extension traits uses their `read_exact` / `write_all` on
//! `rt::TcpStream` (the owned-buffer methods have other names, so nothing
//! hides them).

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use overlapped::Engine;
use overlapped::rt::{self, TcpListener, TcpStream};

#[path = "util/mod.rs"]
mod util;

fn futures_extension_methods_on_rt_streams(e: &Engine) {
    let got = rt::block_on(async {
        let l = TcpListener::bind(e, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let e2 = e.clone();
        let writer = rt::spawn(async move {
            let mut c = TcpStream::connect(&e2, addr).await.unwrap();
            c.write_all(b"through the extension traits").await.unwrap();
            c.flush().await.unwrap();
            c.close().await.unwrap();
        });
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 28];
        s.read_exact(&mut buf).await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        writer.await;
        (buf, rest)
    });
    assert_eq!(&got.0[..], b"through the extension traits");
    assert!(got.1.is_empty());
}

util::cases! {
    futures_extension_methods_on_rt_streams,
}
