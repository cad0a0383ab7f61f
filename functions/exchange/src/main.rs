#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let boot = shared::Boot::from_env("exchange", exchange::NEEDS).await;
    let function = exchange::Exchange::new(&boot);
    shared::http::run(|req| function.handle(req)).await
}
