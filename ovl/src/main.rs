//! `ovl`: the command-line tool of the overlapped library.

fn main() {
    println!("ovl");
}
