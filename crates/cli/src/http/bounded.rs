//! A TCP listener for axum that bounds the connections served at once and closes a
//! connection that makes no progress for `idle` or lives longer than `lifetime` (slow
//! readers, slow writers, trickling senders, idle keep-alives).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// See the module docs.
pub(crate) struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle: Duration,
    lifetime: Duration,
}

impl BoundedListener {
    pub(crate) fn new(inner: TcpListener, max: usize, idle: Duration, lifetime: Duration) -> Self {
        Self { inner, slots: Arc::new(Semaphore::new(max)), idle, lifetime }
    }
}

impl Listener for BoundedListener {
    type Io = BoundedConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Wait for a free slot before accepting: excess clients wait in the backlog.
        let permit = self.slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (io, addr) = Listener::accept(&mut self.inner).await;
        let now = Instant::now();
        let conn = BoundedConn {
            io,
            _permit: permit,
            idle: self.idle,
            ends: now + self.lifetime,
            timer: Box::pin(tokio::time::sleep_until((now + self.idle).min(now + self.lifetime))),
        };
        (conn, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A served connection: it holds its slot until dropped.
pub(crate) struct BoundedConn {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    ends: Instant,
    timer: Pin<Box<Sleep>>,
}

impl BoundedConn {
    /// Pushes the deadline back after progress (never past the lifetime).
    fn progressed(&mut self) {
        let next = (Instant::now() + self.idle).min(self.ends);
        self.timer.as_mut().reset(next);
    }

    /// On `Pending`: an error once the deadline passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "http connection idle or too old")
}

impl AsyncRead for BoundedConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for BoundedConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
