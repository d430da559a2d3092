//! Waiting for the first of two futures, without an executor-specific macro.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

/// Which future finished first.
pub(crate) enum Either<A, B> {
    First(A),
    Second(B),
}

/// Polls `a` then `b` until one is ready; drops the other.
pub(crate) async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::First(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Second(y));
        }
        Poll::Pending
    })
    .await
}
