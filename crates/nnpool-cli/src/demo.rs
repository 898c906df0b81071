//! `nnpool demo`: the lecture's claims, computed by the library on built-in data.

use crate::Failure;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {}

pub fn run(_: &DemoArgs) -> Result<(), Failure> {
    println!("nnpool demo");
    Ok(())
}
