//! The README shows `examples/embed.rs` verbatim, so the embedding example it documents compiles.

#[test]
fn the_readme_embeds_the_compiled_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/embed.rs");
    assert!(
        readme.contains(example.trim_end()),
        "README.md must contain examples/embed.rs verbatim"
    );
}

#[test]
fn the_readme_has_exactly_two_setup_commands() {
    let readme = include_str!("../README.md");
    let setup = readme
        .split("## Set up")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("a Set up section with a code block");
    let commands: Vec<_> = setup
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands[0].starts_with("cargo run --example demo"));
    assert!(commands[1].starts_with("cargo test"));
}
