#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let boot = shared::Boot::from_env("tokens", tokens::NEEDS).await;
    let function = tokens::Tokens::new(&boot);
    shared::batch::run(|request| function.handle(request)).await
}
