use super::*;

/// A receive of `src` as the engine does it: copied into the room, the
/// count recorded, the buffers handed back.
fn receive<B: IoBufsMut>(bufs: B, src: &[u8]) -> (usize, B) {
    let mut e = erase_rx(bufs);
    let (n, _) = e.copy_in(0, src);
    // SAFETY: `copy_in` wrote them.
    unsafe { e.set_received(n) };
    (n, take_back::<B>(e).unwrap())
}

#[test]
fn scatter_truncates_in_array_order() {
    let (n, b) = receive(
        vec![vec![0u8; 3], vec![0u8; 5], vec![0u8; 100]],
        b"abcdefgh",
    );
    assert_eq!(n, 8);
    assert_eq!(b, vec![b"abc".to_vec(), b"defgh".to_vec(), vec![]]);
    assert_eq!(b[2].capacity(), 100);
}

#[test]
fn slice_windows_scatter_and_keep_the_buffer() {
    let b = [Slice::new(vec![7u8; 10], 2..5), Slice::from(vec![0u8; 4])];
    let mut e = erase_rx(b);
    assert_eq!(e.total_len(), Some(7));
    assert_eq!(e.buf_count(), 2);
    assert_eq!(e.copy_in(0, b"12345"), (5, 7));
    // SAFETY: `copy_in` wrote them.
    unsafe { e.set_received(5) };
    let mut landed = Vec::new();
    e.received(9, &mut landed);
    assert_eq!(landed, b"12345");
    let mut b = take_back::<[Slice; 2]>(e).unwrap();
    assert_eq!((b[0].range(), b[1].range()), (2..5, 0..2));
    assert_eq!((&b[0][..], &b[1][..]), (&b"123"[..], &b"45"[..]));
    assert_eq!((b[0].buffer().len(), b[1].buffer().len()), (10, 4));
    b[1].set_range(1..=3);
    assert_eq!(b[1].len(), 3);
    assert_eq!(b[1].clone().into_inner(), vec![b'4', b'5', 0, 0]);
    assert_eq!(
        format!("{:?}", b[1]),
        "Slice { range: 1..4, buffer_len: 4 }"
    );
}

#[test]
#[should_panic(expected = "not within a buffer of 4 bytes")]
fn slice_window_beyond_the_buffer_panics() {
    let _ = Slice::new(vec![0u8; 4], 2..5);
}

#[test]
fn check_rejects_empty_and_too_many() {
    assert!(check_bufs(erase_tx(Vec::<Vec<u8>>::new()).as_bufs()).is_err());
    let many: Vec<Vec<u8>> = (0..IOV_MAX + 1).map(|_| vec![0u8; 1]).collect();
    assert!(check_bufs(erase_rx(many).as_bufs()).is_err());
    let max: Vec<Vec<u8>> = (0..IOV_MAX).map(|_| vec![0u8; 1]).collect();
    assert_eq!(check_bufs(erase_tx(max).as_bufs()).unwrap(), IOV_MAX);
}

#[test]
fn a_send_shows_its_bytes_and_takes_nothing_in() {
    let mut e = erase_tx([b"ab".to_vec(), b"cde".to_vec()]);
    assert_eq!(e.total_len(), Some(5));
    assert!(e.one().is_none());
    let got: Vec<u8> = e.io_slices().iter().flat_map(|s| s.to_vec()).collect();
    assert_eq!(got, b"abcde");
    assert_eq!(e.copy_in(0, b"x"), (0, 0));
    // SAFETY: `copy_in` wrote them.
    unsafe { e.set_received(1) };
    let b = take_back::<[Vec<u8>; 2]>(e).unwrap();
    assert_eq!(b, [b"ab".to_vec(), b"cde".to_vec()]);
    let e = erase_tx(&b"static"[..]);
    assert_eq!(e.one(), Some(&b"static"[..]));
    // Another type than the one given is not handed back.
    assert!(take_back::<Vec<u8>>(e).is_none());
}

#[test]
fn fixed_arrays_keep_their_length() {
    let (n, b) = receive([[0u8; 2]; 3], b"abc");
    assert_eq!((n, b), (3, [*b"ab", [b'c', 0], [0, 0]]));
    let (n, b) = receive(Box::new([9u8; 4]), b"xy");
    assert_eq!((n, &b[..]), (2, &b"xy\x09\x09"[..]));
    let (n, b) = receive(vec![0u8; 3].into_boxed_slice(), b"abcdef");
    assert_eq!((n, &b[..]), (3, &b"abc"[..]));
}

#[test]
fn every_split_of_a_receive_lands_in_array_order() {
    let src: Vec<u8> = (1..=12).collect();
    for sizes in [&[0usize, 3, 0, 4][..], &[1, 1, 1], &[5], &[2, 0, 7, 3]] {
        let total: usize = sizes.iter().sum();
        for skip in 0..=total {
            for n in 0..=total - skip {
                let bufs: Vec<Vec<u8>> = sizes.iter().map(|&k| vec![0u8; k]).collect();
                let mut e = erase_rx(bufs);
                let (copied, room) = e.copy_in(skip, &src[..n]);
                assert_eq!((copied, room), (n, total - skip));
                // SAFETY: `copy_in` wrote them.
                unsafe { e.set_received(skip + n) };
                let mut landed = Vec::new();
                e.received(total, &mut landed);
                assert_eq!(landed.len(), skip + n);
                assert_eq!(&landed[skip..], &src[..n]);
                let back = take_back::<Vec<Vec<u8>>>(e).unwrap();
                assert_eq!(back.concat(), landed);
                let mut left = skip + n;
                for (b, &k) in back.iter().zip(sizes) {
                    assert_eq!(b.len(), left.min(k));
                    left -= left.min(k);
                }
            }
        }
    }
}

#[test]
fn a_start_that_fails_hands_back_untouched() {
    // Nothing recorded: a `Vec` keeps its length.
    let e = erase_rx(vec![1u8; 4]);
    assert_eq!(take_back::<Vec<u8>>(e).unwrap(), vec![1u8; 4]);
}

#[cfg(feature = "bytes")]
#[test]
fn bytes_mut_receives_into_its_spare_capacity() {
    let mut b = bytes::BytesMut::with_capacity(8);
    b.extend_from_slice(b"ab");
    let (n, b) = receive(b, b"cdefghijk");
    assert_eq!((n, &b[..]), (6, &b"abcdefgh"[..]));
    // No spare capacity: a zero-byte receive.
    let (n, b) = receive(b, b"z");
    assert_eq!((n, &b[..]), (0, &b"abcdefgh"[..]));
    // Scattered over two, then sent from both.
    let two = [
        bytes::BytesMut::with_capacity(2),
        bytes::BytesMut::with_capacity(3),
    ];
    let (n, two) = receive(two, b"12345");
    assert_eq!((n, &two[0][..], &two[1][..]), (5, &b"12"[..], &b"345"[..]));
    let e = erase_tx(two);
    assert_eq!(e.total_len(), Some(5));
    let e = erase_tx(bytes::Bytes::from_static(b"hi"));
    assert_eq!(e.one(), Some(&b"hi"[..]));
}

#[test]
fn only_one_fixed_buf_shows_its_registered_window() {
    let pool = FixedBufs::new(crate::sys::fixed::Pool::new(3, 16).unwrap());
    let mut b = pool.take().unwrap();
    assert_eq!(b.extend_from_slice(b"abc"), 3);
    let index = b.index() as u16;
    // A send: the bytes `..len()`.
    let mut e = erase_tx(b);
    let f = e.fixed().expect("one FixedBuf");
    assert_eq!((f.index, f.len), (index, 3));
    let b = take_back::<FixedBuf>(e).unwrap();
    // A receive: the room past the bytes, and the count appended.
    let mut e = erase_rx(b);
    let f = e.fixed().expect("one FixedBuf");
    assert_eq!((f.index, f.len), (index, 13));
    assert_eq!(e.copy_in(0, b"defg"), (4, 13));
    // SAFETY: `copy_in` wrote them.
    unsafe { e.set_received(4) };
    let b = take_back::<FixedBuf>(e).unwrap();
    assert_eq!(&b[..], b"abcdefg");
    // Arrays of them, and other buffers, have none.
    let two = [b, pool.take().unwrap()];
    assert!(erase_tx(two).fixed().is_none());
    assert!(erase_rx(vec![0u8; 4]).fixed().is_none());
    assert!(erase_tx(vec![pool.take().unwrap()]).fixed().is_some());
    // Every buffer went back to the pool (the boxes above dropped).
    assert_eq!(pool.available(), 3);
}
