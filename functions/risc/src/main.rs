#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let boot = shared::Boot::from_env("risc", risc::NEEDS).await;
    let function = risc::Risc::new(&boot);
    shared::http::run(|req| function.handle(req)).await
}
