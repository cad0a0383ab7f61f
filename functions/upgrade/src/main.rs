#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let boot = shared::Boot::from_env("upgrade", upgrade::NEEDS).await;
    let function = upgrade::Upgrade::new(&boot);
    shared::http::run(|req| function.handle(req)).await
}
