#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let boot = shared::Boot::from_env("events", events::NEEDS).await;
    let function = events::Events::new(&boot);
    shared::http::run(|req| function.handle(req)).await
}
