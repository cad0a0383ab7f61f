#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let boot = shared::Boot::from_env("account", account::NEEDS).await;
    let function = account::Account::new(&boot);
    shared::http::run(|req| function.handle(req)).await
}
